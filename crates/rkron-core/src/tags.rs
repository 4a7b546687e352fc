//! Target selection: which nodes run a job, by Dkron's `"key": "value[:count]"` tag algorithm (reference §6.4).

use std::collections::BTreeMap;

use rand::Rng;

use crate::job::StringMap;

/// What targeting needs to know about a cluster member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Member name.
    pub name: String,
    /// Whether the member is alive.
    pub alive: bool,
    /// The member's tags (reserved and user tags).
    pub tags: StringMap,
}

/// Splits a job's tags into required values and the cardinality (smallest count; `usize::MAX`
/// when none is given). A non-integer count counts as 0, as in Dkron.
pub fn clean_tags(tags: &StringMap) -> (BTreeMap<String, String>, usize) {
    let mut required = BTreeMap::new();
    let mut cardinality = usize::MAX;
    for (key, value) in tags {
        let parts: Vec<&str> = value.split(':').collect();
        required.insert(key.clone(), parts[0].to_owned());
        if parts.len() == 2 {
            let count = parts[1].parse::<i64>().unwrap_or(0).max(0);
            cardinality = cardinality.min(usize::try_from(count).unwrap_or(usize::MAX));
        }
    }
    (required, cardinality)
}

/// Returns the names of the members a job runs on: alive members of `region` carrying every
/// required tag value, then at most `cardinality` of them chosen uniformly without replacement.
/// An empty result means "no target nodes found".
pub fn select_targets<R: Rng + ?Sized>(
    job_tags: Option<&StringMap>,
    members: &[Candidate],
    region: &str,
    rng: &mut R,
) -> Vec<String> {
    let empty = StringMap::new();
    let (required, cardinality) = clean_tags(job_tags.unwrap_or(&empty));
    let mut candidates: Vec<&Candidate> = members
        .iter()
        .filter(|m| m.alive && m.tags.get("region").map(String::as_str) == Some(region))
        .filter(|m| required.iter().all(|(k, v)| m.tags.get(k) == Some(v)))
        .collect();
    if cardinality < candidates.len() {
        // Partial Fisher-Yates: move `cardinality` random picks to the end.
        let n = candidates.len();
        for i in 0..cardinality {
            let j = rng.random_range(0..n - i);
            candidates.swap(j, n - i - 1);
        }
        candidates.drain(..n - cardinality);
    }
    candidates.into_iter().map(|m| m.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn nodes() -> Vec<Candidate> {
        let base = [
            ("region", "global"),
            ("additional", "value"),
            ("additional2", "value2"),
        ];
        let mut t1 = map(&base);
        t1.insert("tag".into(), "test".into());
        let mut t2 = t1.clone();
        t2.insert("extra".into(), "tag".into());
        let mut t3 = map(&base);
        t3.insert("tag".into(), "test_client".into());
        t3.insert("extra".into(), "tag".into());
        vec![
            Candidate {
                name: "test1".into(),
                alive: true,
                tags: t1,
            },
            Candidate {
                name: "test2".into(),
                alive: true,
                tags: t2,
            },
            Candidate {
                name: "test3".into(),
                alive: true,
                tags: t3,
            },
        ]
    }

    fn pick(tags: &[(&str, &str)]) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut out = select_targets(Some(&map(tags)), &nodes(), "global", &mut rng);
        out.sort();
        out
    }

    #[test]
    fn dkron_target_vectors() {
        assert_eq!(pick(&[("tag", "test:2")]), ["test1", "test2"]);
        assert_eq!(pick(&[("tag", "test:1")]).len(), 1);
        assert_eq!(pick(&[]), ["test1", "test2", "test3"]);
        assert_eq!(pick(&[("tag", "test_client:1")]), ["test3"]);
        assert!(pick(&[("tag", "no_tag")]).is_empty());
        assert!(pick(&[("foo", "bar:1"), ("tag", "test:2")]).is_empty());
        assert_eq!(pick(&[("tag", "test:2"), ("extra", "tag:2")]), ["test2"]);
        assert!(pick(&[("tag", "test:invalid")]).is_empty());
    }

    #[test]
    fn uniform_over_many_picks() {
        let tags = map(&[("additional", "value:1"), ("additional2", "value2:1")]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = BTreeMap::new();
        for _ in 0..999 {
            let picked = select_targets(Some(&tags), &nodes(), "global", &mut rng);
            assert_eq!(picked.len(), 1);
            *counts.entry(picked[0].clone()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        for c in counts.values() {
            assert!((250..=420).contains(c), "skewed picks: {counts:?}");
        }
    }

    #[test]
    fn clean_tags_vectors() {
        let (req, card) = clean_tags(&map(&[("key1", "value1"), ("key2", "value2")]));
        assert_eq!(req, map(&[("key1", "value1"), ("key2", "value2")]));
        assert_eq!(card, usize::MAX);
        assert_eq!(clean_tags(&map(&[("key2", "value2:5")])).1, 5);
        assert_eq!(
            clean_tags(&map(&[("key1", "value1:2"), ("key2", "value2:5")])).1,
            2
        );
        assert_eq!(clean_tags(&map(&[("key2", "value2:cardinality")])).1, 0);
    }

    #[test]
    fn dead_and_other_region_excluded() {
        let mut ns = nodes();
        ns[0].alive = false;
        ns[1].tags.insert("region".into(), "atlantis".into());
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(select_targets(None, &ns, "global", &mut rng), ["test3"]);
    }
}
