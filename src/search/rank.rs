//! The ranking key: Meilisearch's ranking rules in its order (words, typo, proximity,
//! attribute, sort, exactness) as one integer per offer, compared rule by rule.
//!
//! The word scorer (`word_scorer`) sums, over the query terms an offer matches, each
//! term's `words` rank and its best match's typo, attribute and exactness parts. Each
//! rule has its own range of the sum (a mixed radix: every part's largest possible sum
//! stays below the next part's unit), so a sum never carries from one rule into the
//! next and comparing the integers compares the rules in order. Proximity needs word
//! positions, which scoring every match does not read: `proximity` computes it for the
//! best candidates, and `collect::compare` puts it between typo and attribute, and
//! `sort` between attribute and exactness.
//!
//! Tantivy hands scores to the collector as `f32`: the key travels as the float whose
//! bits it is. Positive floats order as their bits, and the only arithmetic tantivy does
//! on our scores is adding the filters' `0.0`, which leaves any float unchanged.

use tantivy::Score;

use super::query::MAX_WORDS;

/// Largest attribute weight `index/relevance.toml` may give (bounds the attribute range).
pub const MAX_WEIGHT: u32 = 100;

/// A matched term counts 1 when matched exactly (the word itself, or a phrase).
const EXACTNESS_UNIT: u32 = 1;
const EXACTNESS_RANGE: u32 = MAX_WORDS as u32 + 1;
const ATTRIBUTE_UNIT: u32 = EXACTNESS_UNIT * EXACTNESS_RANGE;
const ATTRIBUTE_RANGE: u32 = MAX_WORDS as u32 * MAX_WEIGHT + 1;
/// A matched term counts `2 - typos` (a prefix or a synonym has no typo).
const TYPO_UNIT: u32 = ATTRIBUTE_UNIT * ATTRIBUTE_RANGE;
const TYPO_RANGE: u32 = 2 * MAX_WORDS as u32 + 1;
/// What a term's `words` rank is multiplied by (see `terms` for the ranks).
pub const WORDS_UNIT: u32 = TYPO_UNIT * TYPO_RANGE;

/// Most a query's `words` ranks may sum to: with ten terms each outweighing all those
/// dropped before it, 1 + 2 + ... + 512.
pub const MAX_WORDS_RANK: u32 = (1 << MAX_WORDS) - 1;

// The largest key must stay a finite positive float's bits (below the infinities).
const _: () =
    assert!((MAX_WORDS_RANK as u64 + 1) * WORDS_UNIT as u64 <= f32::INFINITY.to_bits() as u64);

/// What matching one term through one variant adds, besides the term's words rank:
/// its typos (0 to 2), the weight of the attribute it matched in, and whether it
/// matched exactly.
pub fn term_match(typos: u8, weight: u32, exact: bool) -> u32 {
    (2 - u32::from(typos.min(2))) * TYPO_UNIT
        + weight.min(MAX_WEIGHT) * ATTRIBUTE_UNIT
        + u32::from(exact) * EXACTNESS_UNIT
}

/// The `words` part of a term's contribution, for its rank.
pub fn words(rank: u32) -> u32 {
    rank * WORDS_UNIT
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

    /// The words rule's part: the sum of the matched terms' words ranks.
    pub fn words_rank(self) -> u32 {
        self.0 / WORDS_UNIT
    }

    /// The words and typo rules together: what proximity ranks within.
    pub fn words_and_typo(self) -> u32 {
        self.0 / TYPO_UNIT
    }

    /// The typo rule's part: the sum over the matched terms of `2 - typos`.
    pub fn typo(self) -> u32 {
        self.0 % WORDS_UNIT / TYPO_UNIT
    }

    /// The attribute rule's part (higher ranks first).
    pub fn attribute(self) -> u32 {
        self.0 % TYPO_UNIT / ATTRIBUTE_UNIT
    }

    /// The exactness rule's part: how many terms matched exactly.
    pub fn exactness(self) -> u32 {
        self.0 % ATTRIBUTE_UNIT
    }

    /// Everything ranked before `sort`, proximity aside: a candidate lower than the
    /// worst kept in this can never make the page.
    pub fn before_sort(self) -> u32 {
        self.0 / ATTRIBUTE_UNIT
    }

    /// The keys whose [`Key::before_sort`] equals this one's: a lower key ranks
    /// below it before `sort`, a higher one above.
    pub fn tying_before_sort(self) -> std::ops::Range<u32> {
        let start = self.before_sort() * ATTRIBUTE_UNIT;
        start..start.saturating_add(ATTRIBUTE_UNIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest sum the scorer can make: every term at its best.
    fn best(terms: u32) -> u32 {
        (0..terms)
            .map(|_| term_match(0, MAX_WEIGHT, true))
            .sum::<u32>()
            + words(MAX_WORDS_RANK)
    }

    #[test]
    fn each_rule_decides_only_when_the_rules_before_it_tie() {
        let ten = MAX_WORDS as u32;
        // Ten terms at their worst in typo still beat one typo more with every
        // attribute and exactness at their best.
        let fewer_typos = Key((0..ten).map(|_| term_match(0, 1, false)).sum());
        let one_more_typo = Key(term_match(1, MAX_WEIGHT, true)
            + (1..ten)
                .map(|_| term_match(0, MAX_WEIGHT, true))
                .sum::<u32>());
        assert!(fewer_typos.words_and_typo() > one_more_typo.words_and_typo());
        assert!(fewer_typos > one_more_typo);

        let better_attribute = Key((0..ten).map(|_| term_match(0, 2, false)).sum());
        let exact_everywhere =
            Key(term_match(0, 1, true) + (1..ten).map(|_| term_match(0, 2, true)).sum::<u32>());
        assert_eq!(
            better_attribute.words_and_typo(),
            exact_everywhere.words_and_typo()
        );
        assert!(better_attribute.attribute() > exact_everywhere.attribute());
        assert_eq!(exact_everywhere.exactness(), ten);
        assert!(better_attribute > exact_everywhere);

        // One more words rank outweighs every other rule at its best.
        assert!(Key(words(2)) > Key(words(1) + best(ten) - words(MAX_WORDS_RANK)));
    }

    #[test]
    fn a_key_survives_the_trip_through_a_score_and_a_filters_zero() {
        for key in [1, 7, best(10), words(3) + term_match(2, 0, false)] {
            let score = Key(key).score();
            assert!(score.is_finite() && score > 0.0);
            assert_eq!(Key::of(score + 0.0), Key(key));
            assert_eq!(Key::of(0.0 + score), Key(key));
        }
        assert!(Key(5).score() < Key(6).score(), "floats order as the keys");
        let key = Key(words(2) + term_match(1, 3, true));
        let ties = key.tying_before_sort();
        assert!(ties.contains(&key.0));
        for other in [ties.start - 1, ties.start, ties.end - 1, ties.end] {
            assert_eq!(
                ties.contains(&other),
                Key(other).before_sort() == key.before_sort(),
                "{other}"
            );
        }
    }
}
