//! The ranking key: the ranking rules a query's words decide (words, typo, attribute,
//! exactness) as one integer per offer, in the order `index/relevance.toml` lists them.
//!
//! The word scorer (`word_scorer`) sums, over the query terms an offer matches, each
//! term's `words` rank and its best match's typo, attribute and exactness parts. Each
//! rule has its own range of the sum (a mixed radix: every part's largest possible sum
//! stays below the next part's unit), so a sum never carries from one rule into the
//! next. The [`Layout`] gives the rule listed first the highest digits, so comparing
//! two keys compares those rules in their order; a rule left out has no digits and adds
//! nothing. Proximity needs word positions, which scoring every match does not read:
//! `proximity` computes it for the best candidates, and `rules::Order` compares it, and
//! `sort`, where the rules list them.
//!
//! Tantivy hands scores to the collector as `f32`: the key travels as the float whose
//! bits it is. Positive floats order as their bits, and the only arithmetic tantivy does
//! on our scores is adding the filters' `0.0`, which leaves any float unchanged.

use tantivy::Score;

use super::query::MAX_WORDS;

/// Largest attribute weight `index/relevance.toml` may give (bounds the attribute range).
pub const MAX_WEIGHT: u32 = 100;

/// Most a query's `words` ranks may sum to: with ten terms each outweighing all those
/// dropped before it, 1 + 2 + ... + 512.
pub const MAX_WORDS_RANK: u32 = (1 << MAX_WORDS) - 1;

/// A rule with digits in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The sum of the matched terms' words ranks (see `terms`).
    Words,
    /// The sum over the matched terms of `2 - typos` (a prefix or a synonym has none).
    Typo,
    /// The sum of the matched terms' attribute weights.
    Attribute,
    /// How many terms matched exactly (the word itself, or a phrase).
    Exactness,
}

impl Part {
    /// How many values the part's sum can take.
    const fn range(self) -> u32 {
        match self {
            Part::Words => MAX_WORDS_RANK + 1,
            Part::Typo => 2 * MAX_WORDS as u32 + 1,
            Part::Attribute => MAX_WORDS as u32 * MAX_WEIGHT + 1,
            Part::Exactness => MAX_WORDS as u32 + 1,
        }
    }
}

// The largest key, every part present, must stay a finite positive float's bits (below
// the infinities), whatever their order.
const _: () = assert!(
    Part::Words.range() as u64
        * Part::Typo.range() as u64
        * Part::Attribute.range() as u64
        * Part::Exactness.range() as u64
        <= f32::INFINITY.to_bits() as u64
);

/// Where each part sits in the key: its unit (what one step of it adds), 0 for a part
/// the ranking rules leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    words: u32,
    typo: u32,
    attribute: u32,
    exactness: u32,
}

impl Layout {
    /// Meilisearch's default order: words, typo, attribute, exactness.
    pub const DEFAULT: Layout =
        Layout::of(&[Part::Words, Part::Typo, Part::Attribute, Part::Exactness]);

    /// The layout giving `parts` (each at most once) the key's digits, the first the
    /// highest.
    pub const fn of(parts: &[Part]) -> Layout {
        let mut layout = Layout {
            words: 0,
            typo: 0,
            attribute: 0,
            exactness: 0,
        };
        let mut unit = 1;
        let mut i = parts.len();
        while i > 0 {
            i -= 1;
            match parts[i] {
                Part::Words => layout.words = unit,
                Part::Typo => layout.typo = unit,
                Part::Attribute => layout.attribute = unit,
                Part::Exactness => layout.exactness = unit,
            }
            unit *= parts[i].range();
        }
        layout
    }

    /// The unit of `part` (0: not in the key).
    pub const fn unit(&self, part: Part) -> u32 {
        match part {
            Part::Words => self.words,
            Part::Typo => self.typo,
            Part::Attribute => self.attribute,
            Part::Exactness => self.exactness,
        }
    }

    /// What matching one term through one variant adds, besides the term's words rank:
    /// its typos (0 to 2), the weight of the attribute it matched in, and whether it
    /// matched exactly.
    pub fn term_match(&self, typos: u8, weight: u32, exact: bool) -> u32 {
        (2 - u32::from(typos.min(2))) * self.typo
            + weight.min(MAX_WEIGHT) * self.attribute
            + u32::from(exact) * self.exactness
    }

    /// The `words` part of a term's contribution, for its rank.
    pub fn words(&self, rank: u32) -> u32 {
        rank * self.words
    }

    /// The sum `key` holds for `part` (0 for a part not in the key).
    pub fn part(&self, key: Key, part: Part) -> u32 {
        match self.unit(part) {
            0 => 0,
            unit => key.0 / unit % part.range(),
        }
    }
}

/// A ranking key, read back from the score tantivy passed along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(pub u32);

impl Key {
    /// The key a scored search's score carries (see the module's note).
    pub fn of(score: Score) -> Key {
        Key(score.to_bits())
    }

    /// The score that carries `self`.
    pub fn score(self) -> Score {
        Score::from_bits(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Part; 4] = [Part::Words, Part::Typo, Part::Attribute, Part::Exactness];

    /// The largest sum the scorer can make in `layout`: every term at its best.
    fn best(layout: &Layout, terms: u32) -> u32 {
        (0..terms)
            .map(|_| layout.term_match(0, MAX_WEIGHT, true))
            .sum::<u32>()
            + layout.words(MAX_WORDS_RANK)
    }

    #[test]
    fn each_rule_decides_only_when_the_rules_before_it_tie() {
        let layout = Layout::DEFAULT;
        let ten = MAX_WORDS as u32;
        // Ten terms at their worst in typo still beat one typo more with every
        // attribute and exactness at their best.
        let fewer_typos = Key((0..ten).map(|_| layout.term_match(0, 1, false)).sum());
        let one_more_typo = Key(layout.term_match(1, MAX_WEIGHT, true)
            + (1..ten)
                .map(|_| layout.term_match(0, MAX_WEIGHT, true))
                .sum::<u32>());
        assert!(layout.part(fewer_typos, Part::Typo) > layout.part(one_more_typo, Part::Typo));
        assert!(fewer_typos > one_more_typo);

        let better_attribute = Key((0..ten).map(|_| layout.term_match(0, 2, false)).sum());
        let exact_everywhere = Key(layout.term_match(0, 1, true)
            + (1..ten).map(|_| layout.term_match(0, 2, true)).sum::<u32>());
        assert_eq!(
            layout.part(better_attribute, Part::Typo),
            layout.part(exact_everywhere, Part::Typo)
        );
        assert!(
            layout.part(better_attribute, Part::Attribute)
                > layout.part(exact_everywhere, Part::Attribute)
        );
        assert_eq!(layout.part(exact_everywhere, Part::Exactness), ten);
        assert!(better_attribute > exact_everywhere);

        // One more words rank outweighs every other rule at its best.
        let rest = best(&layout, ten) - layout.words(MAX_WORDS_RANK);
        assert!(Key(layout.words(2)) > Key(layout.words(1) + rest));
    }

    #[test]
    fn in_any_order_and_subset_the_first_part_outweighs_the_others_and_each_reads_back() {
        // Every order of every subset of the four parts.
        for mask in 1u32..16 {
            let chosen: Vec<Part> = (0..4)
                .filter(|i| mask & 1 << i != 0)
                .map(|i| ALL[i])
                .collect();
            let mut orders = vec![chosen.clone()];
            // Rotations and the reverse: each part comes first somewhere.
            for shift in 1..chosen.len() {
                let mut rotated = chosen.clone();
                rotated.rotate_left(shift);
                orders.push(rotated);
            }
            let mut reversed = chosen.clone();
            reversed.reverse();
            orders.push(reversed);
            for order in orders {
                let layout = Layout::of(&order);
                let ten = MAX_WORDS as u32;
                // Ten terms, with words rank 3 each (within MAX_WORDS_RANK in total).
                let sum = |typos: u8, weight: u32, exact: bool, rank: u32| {
                    Key((0..ten)
                        .map(|_| layout.words(rank) + layout.term_match(typos, weight, exact))
                        .sum())
                };
                let key = sum(1, 7, true, 3);
                for part in ALL {
                    let expected = if order.contains(&part) {
                        match part {
                            Part::Words => 3 * ten,
                            Part::Typo => ten,
                            Part::Attribute => 7 * ten,
                            Part::Exactness => ten,
                        }
                    } else {
                        0
                    };
                    assert_eq!(layout.part(key, part), expected, "{part:?} of {order:?}");
                }
                // One step more of the first part outweighs every later part at its
                // largest sum.
                let first = order[0];
                let largest_rest: u32 = order[1..]
                    .iter()
                    .map(|&part| (part.range() - 1) * layout.unit(part))
                    .sum();
                let v = 5 * layout.unit(first);
                assert!(
                    Key(v + layout.unit(first)) > Key(v + largest_rest),
                    "{first:?} first in {order:?}"
                );
                for part in ALL.iter().filter(|part| !order.contains(part)) {
                    assert_eq!(layout.unit(*part), 0, "{part:?} has no digits in {order:?}");
                }
            }
        }
        assert_eq!(Layout::of(&ALL), Layout::DEFAULT);
    }

    #[test]
    fn a_key_survives_the_trip_through_a_score_and_a_filters_zero() {
        let layout = Layout::DEFAULT;
        for key in [
            1,
            7,
            best(&layout, 10),
            layout.words(3) + layout.term_match(2, 0, false),
        ] {
            let score = Key(key).score();
            assert!(score.is_finite() && score > 0.0);
            assert_eq!(Key::of(score + 0.0), Key(key));
            assert_eq!(Key::of(0.0 + score), Key(key));
        }
        assert!(Key(5).score() < Key(6).score(), "floats order as the keys");
        for order in [
            ALL,
            [Part::Exactness, Part::Attribute, Part::Typo, Part::Words],
        ] {
            let score = Key(best(&Layout::of(&order), 10)).score();
            assert!(score.is_finite() && score > 0.0, "{order:?}");
        }
    }
}
