use std::cmp::Ordering;

use tantivy::DocAddress;

use super::*;
use crate::search::collect::MAX_SORT;
use crate::search::rank::MAX_WORDS_RANK;
use crate::search::schema;
use crate::search::sort::SortValue;

/// A list as `relevance.toml` writes it, from its entries separated by spaces.
fn names(listed: &str) -> Vec<String> {
    listed.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_list_is_refused_for_an_unknown_a_custom_or_a_repeated_rule() {
    let shipped = "words typo proximity attribute sort exactness";
    assert_eq!(parse(&names(shipped)), Ok(Rule::DEFAULT.to_vec()));
    assert_eq!(parse(&[]), Ok(Vec::new()));
    let err = parse(&names("words typos")).unwrap_err();
    assert!(err.contains("`typos` is no ranking rule"), "{err}");
    let err = parse(&names("words price:asc")).unwrap_err();
    assert!(err.contains("`price:asc`: custom ranking rules"), "{err}");
    let err = parse(&names("sort words sort")).unwrap_err();
    assert!(err.contains("`sort` is listed twice"), "{err}");
}

#[test]
fn words_ranks_before_the_first_rule_that_needs_it_as_in_meilisearch() {
    let order = |rules: &[Rule]| Order::of(rules).rules().to_vec();
    use Rule::*;
    assert_eq!(order(&[Typo, Words]), [Words, Typo]);
    assert_eq!(order(&[Sort, Exactness]), [Sort, Words, Exactness]);
    assert_eq!(order(&[Sort, Words, Proximity]), [Sort, Words, Proximity]);
    assert_eq!(order(&[Attribute, Sort, Words]), [Words, Attribute, Sort]);
    assert_eq!(order(&[Sort]), [Sort]);
    assert_eq!(order(&[]), [] as [Rule; 0]);
    assert!(!Order::of(&[Sort]).has(Words));
    assert!(Order::default().has(Proximity));
}

/// A small random generator (the tests must be reproducible).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n)) as u32
    }
}

/// A candidate with few distinct values per rule, so that every rule ties often.
fn candidate(random: &mut Random, layout: &Layout) -> Ranked {
    let terms = 1 + random.below(3);
    let mut key = layout.words(random.below(4).min(MAX_WORDS_RANK));
    for _ in 0..terms {
        key += layout.term_match(random.below(3) as u8, random.below(3), random.below(2) == 1);
    }
    let mut sort_values = [SortValue::Missing; MAX_SORT];
    sort_values[0] = match random.below(3) {
        0 => SortValue::Number(f64::from(random.below(3))),
        1 => SortValue::Text(u64::from(random.below(3))),
        _ => SortValue::Missing,
    };
    Ranked {
        score: Key(key).score(),
        proximity: random.below(3) as u8,
        sort_values,
        id: f64::from(random.below(20)),
        address: DocAddress::new(0, 0),
    }
}

fn price_sort(descending: bool) -> Vec<SortBy> {
    let (attribute, field) = schema::sortable("price").expect("price is sortable");
    vec![SortBy {
        attribute,
        requested: "price",
        field,
        descending,
    }]
}

#[test]
fn the_shipped_comparison_orders_as_the_general_one() {
    let order = Order::default();
    assert!(order.shipped);
    let mut random = Random(11);
    for sort in [Vec::new(), price_sort(false), price_sort(true)] {
        for _ in 0..20_000 {
            let a = candidate(&mut random, order.layout());
            let b = candidate(&mut random, order.layout());
            let general = compare_steps(order.steps(), &sort, &a, &b).then_with(|| by_id(&a, &b));
            assert_eq!(compare_shipped(&sort, &a, &b), general, "{a:?} {b:?}");
        }
    }
}

/// How `rule` alone orders `a` and `b`, on their own values in `layout`.
fn by_rule(rule: Rule, layout: &Layout, sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
    let part = |ranked: &Ranked, part| layout.part(Key::of(ranked.score), part);
    match rule.part() {
        Some(rule_part) => part(b, rule_part).cmp(&part(a, rule_part)),
        None if rule == Rule::Proximity => b.proximity.cmp(&a.proximity),
        None => compare_sort(sort, a, b),
    }
}

/// The order the rules decide in, one after the other: what `compare` must agree
/// with whatever the list.
fn by_the_rules(order: &Order, sort: &[SortBy], a: &Ranked, b: &Ranked) -> Ordering {
    order
        .rules()
        .iter()
        .map(|rule| by_rule(*rule, order.layout(), sort, a, b))
        .find(|ordering| *ordering != Ordering::Equal)
        .unwrap_or_else(|| by_id(a, b))
}

#[test]
fn any_list_orders_rule_by_rule_and_its_ties_before_sort_are_what_the_collector_skips_by() {
    use Rule::*;
    let lists: [&[Rule]; 8] = [
        &Rule::DEFAULT,
        &[Sort, Words, Typo, Proximity, Attribute, Exactness],
        &[Words, Exactness, Typo, Proximity, Attribute, Sort],
        &[Attribute, Words, Sort, Typo],
        &[Proximity, Sort, Exactness],
        &[Words, Sort],
        &[Sort],
        &[],
    ];
    let mut random = Random(5);
    for list in lists {
        let order = Order::of(list);
        let sort = price_sort(false);
        for _ in 0..5_000 {
            let a = candidate(&mut random, order.layout());
            let b = candidate(&mut random, order.layout());
            assert_eq!(
                order.compare(&sort, &a, &b),
                by_the_rules(&order, &sort, &a, &b),
                "{list:?}: {a:?} {b:?}"
            );
            // While collecting, proximity is not known (0 for all): a key below the
            // ties of another's ranks below it, whatever else.
            let (mut a, mut b) = (a, b);
            a.proximity = 0;
            b.proximity = 0;
            let ties = order.tying_before_sort(Key::of(a.score));
            let key_b = Key::of(b.score).0;
            if key_b < ties.start {
                assert_eq!(order.compare(&sort, &b, &a), Ordering::Greater, "{list:?}");
            } else if key_b >= ties.end {
                assert_eq!(order.compare(&sort, &b, &a), Ordering::Less, "{list:?}");
            }
            if order.has(Proximity) {
                let tied = order
                    .rules()
                    .iter()
                    .take_while(|rule| **rule != Proximity)
                    .all(|rule| by_rule(*rule, order.layout(), &sort, &a, &b) == Ordering::Equal);
                assert_eq!(order.same_before_proximity(&sort, &a, &b), tied, "{list:?}");
            }
        }
    }
}
