//! Meilisearch's ranking rules (`rankingRules`): which of words, typo, proximity,
//! attribute, sort and exactness rank a search's hits, in which order, as
//! `index/relevance.toml` lists them; and that order read off two candidates.
//!
//! As in Meilisearch (milli's `get_ranking_rules_for_query_graph_search`), `words` ranks
//! before the first of typo, proximity, attribute and exactness whether it is listed
//! there or not, and a search may only `sort` when `sort` is listed. Custom rules on an
//! attribute (`price:asc`) are not supported: the file naming one is refused, and a
//! search's `sort` orders by attributes instead.
//!
//! The rules with digits in the ranking key (`rank`) take them in the listed order, so
//! that one integer comparison decides a run of them; proximity (known for the best
//! candidates only, see `proximity`) and sort are compared where they are listed. The
//! shipped order has its own comparison with the key's units as constants: it runs
//! for most matches of a sorted search, and a test holds it to the general one.

use std::cmp::Ordering;
use std::ops::Range;

use super::collect::Ranked;
use super::rank::{Key, Layout, Part};
use super::sort::{SortBy, compare_values};

/// One built-in ranking rule, named as Meilisearch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Words,
    Typo,
    Proximity,
    Attribute,
    Sort,
    Exactness,
}

impl Rule {
    /// Meilisearch's default order.
    pub const DEFAULT: [Rule; 6] = [
        Rule::Words,
        Rule::Typo,
        Rule::Proximity,
        Rule::Attribute,
        Rule::Sort,
        Rule::Exactness,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Words => "words",
            Rule::Typo => "typo",
            Rule::Proximity => "proximity",
            Rule::Attribute => "attribute",
            Rule::Sort => "sort",
            Rule::Exactness => "exactness",
        }
    }

    /// The rule's digits in the ranking key, if it has any.
    fn part(self) -> Option<Part> {
        match self {
            Rule::Words => Some(Part::Words),
            Rule::Typo => Some(Part::Typo),
            Rule::Attribute => Some(Part::Attribute),
            Rule::Exactness => Some(Part::Exactness),
            Rule::Proximity | Rule::Sort => None,
        }
    }

    /// A rule that Meilisearch ranks only after `words`.
    fn needs_words(self) -> bool {
        matches!(
            self,
            Rule::Typo | Rule::Proximity | Rule::Attribute | Rule::Exactness
        )
    }
}

/// The rules as a list in `relevance.toml` names them; the error says which entry is
/// wrong and why.
pub fn parse(names: &[String]) -> Result<Vec<Rule>, String> {
    let mut rules: Vec<Rule> = Vec::with_capacity(names.len());
    for name in names {
        let Some(rule) = Rule::DEFAULT.into_iter().find(|rule| rule.name() == name) else {
            let names = Rule::DEFAULT.map(Rule::name).join(", ");
            return Err(if name.ends_with(":asc") || name.ends_with(":desc") {
                format!(
                    "`{name}`: custom ranking rules on an attribute are not supported; list \
                     `sort` and let searches sort by it (rules: {names})"
                )
            } else {
                format!("`{name}` is no ranking rule; the rules are {names}")
            });
        };
        if rules.contains(&rule) {
            return Err(format!("`{name}` is listed twice"));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// One comparison of an [`Order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The key's digits down to this unit, higher first: the key rules listed since the
    /// previous step (the digits above them tied already).
    Key(u32),
    Proximity,
    Sort,
}

/// The ranking order of a list of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// The rules that rank, `words` moved before the first rule that needs it.
    rules: [Rule; 6],
    len: usize,
    steps: [Step; 6],
    steps_len: usize,
    layout: Layout,
    /// The unit of the last key digits ranked before `sort` (all of them without
    /// `sort`); `None` when no key rule ranks before it.
    before_sort: Option<u32>,
    /// How many steps rank before proximity.
    before_proximity: usize,
    /// The rules are Meilisearch's default order (the comparison with constants).
    shipped: bool,
}

impl Default for Order {
    fn default() -> Order {
        Order::of(&Rule::DEFAULT)
    }
}

impl Order {
    /// The order `listed` (each rule at most once, see [`parse`]) ranks in.
    pub fn of(listed: &[Rule]) -> Order {
        let mut rules = [Rule::Words; 6];
        let mut len = 0;
        for &rule in listed {
            if rule.needs_words() && !rules[..len].contains(&Rule::Words) {
                rules[len] = Rule::Words;
                len += 1;
            }
            if !rules[..len].contains(&rule) {
                rules[len] = rule;
                len += 1;
            }
        }
        let parts: Vec<Part> = rules[..len].iter().filter_map(|rule| rule.part()).collect();
        let layout = Layout::of(&parts);
        let mut steps = [Step::Sort; 6];
        let mut steps_len: usize = 0;
        for rule in &rules[..len] {
            let step = match rule.part() {
                Some(part) => Step::Key(layout.unit(part)),
                None if *rule == Rule::Proximity => Step::Proximity,
                None => Step::Sort,
            };
            match (step, steps_len.checked_sub(1).map(|last| &mut steps[last])) {
                // One division compares a run of key rules.
                (Step::Key(unit), Some(Step::Key(last))) => *last = unit,
                _ => {
                    steps[steps_len] = step;
                    steps_len += 1;
                }
            }
        }
        let steps_used = &steps[..steps_len];
        let sort_at = steps_used
            .iter()
            .position(|step| *step == Step::Sort)
            .unwrap_or(steps_len);
        let before_sort = steps_used[..sort_at]
            .iter()
            .filter_map(|step| match step {
                Step::Key(unit) => Some(*unit),
                _ => None,
            })
            .next_back();
        let before_proximity = steps_used
            .iter()
            .position(|step| *step == Step::Proximity)
            .unwrap_or(steps_len);
        Order {
            rules,
            len,
            steps,
            steps_len,
            layout,
            before_sort,
            before_proximity,
            shipped: rules[..len] == Rule::DEFAULT,
        }
    }

    /// The rules that rank, in order (`words` where it ranks).
    pub fn rules(&self) -> &[Rule] {
        &self.rules[..self.len]
    }

    pub fn has(&self, rule: Rule) -> bool {
        self.rules().contains(&rule)
    }

    /// Where the key rules sit in the ranking key.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn steps(&self) -> &[Step] {
        &self.steps[..self.steps_len]
    }

    /// Ranking order (`Less` comes first): the rules, then the offer id ascending, so
    /// equal documents always come in the same order and pages never overlap.
    #[inline]
    pub fn compare(&self, sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
        if self.shipped {
            return compare_shipped(sort, a, b);
        }
        compare_steps(self.steps(), sort, a, b).then_with(|| by_id(a, b))
    }

    /// Whether `a` and `b` tie on every rule before proximity: proximity orders them.
    pub fn same_before_proximity(&self, sort: &[SortBy], a: &Ranked, b: &Ranked) -> bool {
        compare_steps(&self.steps()[..self.before_proximity], sort, a, b) == Ordering::Equal
    }

    /// The keys that tie with `key` on the key rules before `sort`: a lower key ranks
    /// below it before `sort` (proximity aside), a higher one above.
    pub fn tying_before_sort(&self, key: Key) -> Range<u32> {
        match self.before_sort {
            None => 0..u32::MAX,
            Some(unit) => {
                let start = key.0 / unit * unit;
                start..start.saturating_add(unit)
            }
        }
    }
}

fn compare_steps(steps: &[Step], sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
    let (key_a, key_b) = (a.score.to_bits(), b.score.to_bits());
    for step in steps {
        let ordering = match *step {
            Step::Key(unit) => (key_b / unit).cmp(&(key_a / unit)),
            Step::Proximity => b.proximity.cmp(&a.proximity),
            Step::Sort => compare_sort(sort, a, b),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[inline]
fn compare_sort(sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
    for (i, by) in sort.iter().enumerate() {
        let ordering = compare_values(a.sort_values[i], b.sort_values[i], by.descending);
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

fn by_id(a: &Ranked, b: &Ranked) -> Ordering {
    a.id.partial_cmp(&b.id).unwrap_or(Ordering::Equal)
}

const TYPO_UNIT: u32 = Layout::DEFAULT.unit(Part::Typo);
const ATTRIBUTE_UNIT: u32 = Layout::DEFAULT.unit(Part::Attribute);

/// [`Order::compare`] for the shipped rules: words and typo, proximity, attribute,
/// sort, exactness, id. Equal keys (every unscored search, many ties) need no decoding.
/// Written without closures: this runs for most matches of a sorted search.
#[inline]
fn compare_shipped(sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
    let (key_a, key_b) = (a.score.to_bits(), b.score.to_bits());
    let same_key = key_a == key_b;
    if !same_key || a.proximity != b.proximity {
        let before_sort = (key_b / TYPO_UNIT)
            .cmp(&(key_a / TYPO_UNIT))
            .then(b.proximity.cmp(&a.proximity))
            .then((key_b / ATTRIBUTE_UNIT).cmp(&(key_a / ATTRIBUTE_UNIT)));
        if before_sort != Ordering::Equal {
            return before_sort;
        }
    }
    let sorted = compare_sort(sort, a, b);
    if sorted != Ordering::Equal {
        return sorted;
    }
    if !same_key {
        let exactness = (key_b % ATTRIBUTE_UNIT).cmp(&(key_a % ATTRIBUTE_UNIT));
        if exactness != Ordering::Equal {
            return exactness;
        }
    }
    by_id(a, b)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
