use tantivy::DocAddress;

use super::*;
use crate::search::collect::MAX_SORT;
use crate::search::rank::Layout;
use crate::search::sort::SortValue;

/// The scoring of a query whose terms have `ranks` and allow `typos`, its fields'
/// highest weight `top_weight`.
fn scoring(ranks: &[u32], typos: &[u32], top_weight: u32) -> Scoring {
    scoring_in(Order::default(), ranks, typos, top_weight)
}

/// [`scoring`] with the rules ranking in `order`.
fn scoring_in(order: Order, ranks: &[u32], typos: &[u32], top_weight: u32) -> Scoring {
    let terms = ranks.iter().copied().zip(typos.iter().copied());
    Scoring::new(terms, top_weight, order, true)
}

/// A hit: each matched term as (its words rank, typos, weight, exact), and its
/// proximity value.
fn hit(matches: &[(u32, u8, u32, bool)], proximity: u8) -> Ranked {
    hit_in(&Layout::DEFAULT, matches, proximity)
}

/// [`hit`] with the key laid out by `layout`.
fn hit_in(layout: &Layout, matches: &[(u32, u8, u32, bool)], proximity: u8) -> Ranked {
    let key: u32 = matches
        .iter()
        .map(|&(rank, typos, weight, exact)| {
            layout.words(rank) + layout.term_match(typos, weight, exact)
        })
        .sum();
    Ranked {
        score: Key(key).score(),
        proximity,
        sort_values: [SortValue::Missing; MAX_SORT],
        id: 0.0,
        address: DocAddress::new(0, 0),
    }
}

#[test]
fn ranks_merge_as_milli_merges_them() {
    assert_eq!(Rank::global([]), 1.0);
    assert_eq!(Rank::global([Rank::new(3, 3)]), 1.0);
    // (2 - 1) * 2 + 1 out of 3 * 2.
    assert_eq!(Rank::global([Rank::new(2, 3), Rank::new(1, 2)]), 0.5);
    assert_eq!(Rank::global([Rank::new(1, 3), Rank::new(2, 2)]), 1.0 / 3.0);
}

#[test]
fn a_hit_perfect_but_for_one_step_of_proximity_scores_35_of_36() {
    // "red shirt" with the strategy `last`: red outweighs shirt; shirt allows a typo.
    let scoring = scoring(&[2, 1], &[0, 1], 10);
    let both = hit(&[(2, 0, 10, true), (1, 0, 10, true)], 7);
    // Words 2/2, typo 2/2, proximity 8/9, attribute 21/21, exactness 3/3: only
    // proximity falls short, by one of its nine ranks.
    assert!((scoring.score(&both) - 35.0 / 36.0).abs() < 1e-12);
    assert_eq!(scoring.at_most(Key::of(both.score)), 1.0);
    let details = scoring.details(&both, &[], &Map::new());
    assert_eq!(
        details,
        json!({
            "words": {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
            "proximity": {"order": 2, "score": 8.0 / 9.0},
            "attribute": {"order": 3, "attributeRankingOrderScore": 1.0, "score": 1.0},
            "exactness": {"order": 4, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
        })
    );
    // Only `red`, with every other rule at its best: words 1 of 2, and the half
    // below is ranked further only by the rules after it.
    let red = hit(&[(2, 0, 10, true)], 0);
    let score = scoring.score(&red);
    assert!(score <= 0.5 && score > 0.0, "{score}");
    let shirt_typo = hit(&[(2, 0, 10, true), (1, 1, 10, false)], 8);
    let details = scoring.details(&shirt_typo, &[], &Map::new());
    assert_eq!(details["typo"]["typoCount"], 1);
    assert_eq!(details["typo"]["score"], 0.5);
    assert_eq!(details["exactness"]["matchingWords"], 1);
}

#[test]
fn scores_never_rise_down_the_ranking_order_and_never_pass_their_bound() {
    // Four terms, strategy `last` (ranks 8, 4, 2, 1); and four of one group (`all`).
    for (ranks, typos) in [
        (vec![8, 4, 2, 1], vec![0, 1, 2, 1]),
        (vec![1, 1, 1, 1], vec![2, 1, 0, 1]),
        (vec![3, 3, 1, 1], vec![1, 1, 2, 0]),
    ] {
        let scoring = scoring(&ranks, &typos, 10);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut hits: Vec<Ranked> = (0..2_000)
            .map(|_| {
                let mut matches: Vec<(u32, u8, u32, bool)> = Vec::new();
                for (i, (&rank, &allowed)) in ranks.iter().zip(&typos).enumerate() {
                    if i > 0 && next(3) == 0 {
                        continue;
                    }
                    let typos = next(u64::from(allowed) + 1) as u8;
                    let weight = 1 + next(10) as u32;
                    matches.push((rank, typos, weight, typos == 0 && next(2) == 0));
                }
                hit(&matches, next(25) as u8)
            })
            .collect();
        let order = |a: &Ranked| {
            let part = |part| Layout::DEFAULT.part(Key::of(a.score), part);
            (
                part(Part::Words),
                part(Part::Typo),
                a.proximity,
                part(Part::Attribute),
                part(Part::Exactness),
            )
        };
        hits.sort_by_key(|hit| std::cmp::Reverse(order(hit)));
        for pair in hits.windows(2) {
            let (higher, lower) = (scoring.score(&pair[0]), scoring.score(&pair[1]));
            assert!(
                higher >= lower,
                "{ranks:?}: {:?} scores {higher}, below {:?} at {lower}",
                order(&pair[0]),
                order(&pair[1])
            );
            if order(&pair[0]) > order(&pair[1]) {
                assert!(higher > lower, "{ranks:?}: ties at {higher} across ranks");
            }
        }
        for hit in &hits {
            let score = scoring.score(hit);
            assert!(score > 0.0 && score <= 1.0);
            assert!(scoring.at_most(Key::of(hit.score)) >= score);
        }
    }
}

#[test]
fn sort_details_name_the_criterion_and_the_value_it_sorted_by() {
    let source = json!({"min_price": 1250, "tags": ["b", "a", "c"]});
    let source = source.as_object().unwrap();
    let by = |attribute, descending| SortBy {
        attribute,
        requested: attribute,
        field: crate::search::schema::SortField::Number(attribute),
        descending,
    };
    assert_eq!(
        placeholder_details(
            &[
                by("min_price", false),
                by("tags", true),
                by("vendor", false)
            ],
            source
        ),
        json!({
            "min_price:asc": {"order": 0, "value": 1250},
            "tags:desc": {"order": 1, "value": "c"},
            "vendor:asc": {"order": 2, "value": null},
        })
    );
}

#[test]
fn listed_rules_merge_and_detail_in_their_order_and_the_rest_are_left_out() {
    // Exactness before typo, no proximity, attribute or sort.
    let order = Order::of(&[Rule::Words, Rule::Exactness, Rule::Typo]);
    let scoring = scoring_in(order, &[2, 1], &[0, 1], 10);
    // Both words, `shirt` through a typo: words 2/2 (beyond 1/1), exactness 2/3, typo
    // 1/2 (one typo of one allowed).
    let typo = hit_in(order.layout(), &[(2, 0, 10, true), (1, 1, 10, false)], 0);
    let expected = Rank::global([
        Rank::new(2, 2),
        Rank::new(1, 1),
        Rank::new(2, 3),
        Rank::new(1, 2),
    ]);
    assert!((scoring.score(&typo) - expected).abs() < 1e-12);
    // Words 2 of 2 (beyond 1 of 1), then exactness: ((2 - 1) * 3 + 2) of 6, then typo:
    // ((5 - 1) * 2 + 1) of 12.
    assert!((expected - 9.0 / 12.0).abs() < 1e-12, "{expected}");
    assert_eq!(
        scoring.details(&typo, &[], &Map::new()),
        json!({
            "words": {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
            "exactness": {"order": 1, "matchingWords": 1, "maxMatchingWords": 2, "score": 2.0 / 3.0},
            "typo": {"order": 2, "typoCount": 1, "maxTypoCount": 1, "score": 0.5},
        })
    );
    // With `all`, `words` leaves the details and the merge: exactness 2 of 3, then typo
    // ((2 - 1) * 2 + 1) of 6, where the same ranks after words made 9 of 12 above. A
    // rule at its best still divides the share of the rules after it (milli's merge).
    let terms = [(1, 0), (1, 1)].into_iter();
    let all = Scoring::new(terms, 10, order, false);
    let both = hit_in(order.layout(), &[(1, 0, 10, true), (1, 1, 10, false)], 0);
    let details = all.details(&both, &[], &Map::new());
    assert_eq!(details.as_object().unwrap().len(), 2, "{details}");
    assert_eq!(details["exactness"]["order"], 0);
    assert!((all.score(&both) - 0.5).abs() < 1e-12);
}
