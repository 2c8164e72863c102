//! Statistics for a unit subtree and a period (`GET /api/v1/stats`): visits
//! and distinct households per cadre against the quota of their post,
//! petitions by category, status and level, overdue items, resolution on
//! time, feedback and satisfaction rates against their targets, aid given,
//! cadres and units with nothing reported (零战果), and rankings.
//!
//! The counting is SQL (`Store::visit_counts`, `Store::petition_counts`);
//! this module turns the counts into the answer and is a pure function of
//! them, so it is unit-tested against hand-counted rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::records::petition::{Category, Level, PetitionStatus};

use crate::ledger::report::{PetitionCounts, VisitCounts};
use crate::store::{Role, Unit, User};

/// The quotas and targets supervisors measure against (`[quotas]` in the
/// configuration file). The defaults are the seeds' figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// 包村领导: distinct households per campaign (60).
    pub village_leader_households: i64,
    /// 包村干部: distinct households a year (120).
    pub village_cadre_households: i64,
    /// 村领导: household visits a year (200).
    pub village_head_visits: i64,
    /// Feedback rate target, percent of resolved items (90).
    pub feedback_rate_target: f64,
    /// Satisfaction rate target, percent of rated items (95).
    pub satisfaction_rate_target: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            village_leader_households: 60,
            village_cadre_households: 120,
            village_head_visits: 200,
            feedback_rate_target: 90.0,
            satisfaction_rate_target: 95.0,
        }
    }
}

impl Quotas {
    /// Why these quotas cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("village_leader_households", self.village_leader_households),
            ("village_cadre_households", self.village_cadre_households),
            ("village_head_visits", self.village_head_visits),
        ] {
            if v < 0 {
                return Err(format!("quotas.{name} must not be negative"));
            }
        }
        for (name, v) in [
            ("feedback_rate_target", self.feedback_rate_target),
            ("satisfaction_rate_target", self.satisfaction_rate_target),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("quotas.{name} must be a percentage (0 to 100)"));
            }
        }
        Ok(())
    }
}

/// A cadre's post, which sets their quota (`user_posts`; a cadre without a
/// row is a 包村干部).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Post {
    /// 包村领导: a leader in charge of a village.
    VillageLeader,
    /// 包村干部: a cadre in charge of a village.
    #[default]
    VillageCadre,
    /// 村领导: a village leader.
    VillageHead,
}

impl Post {
    /// Every post.
    pub const ALL: [Post; 3] = [Post::VillageLeader, Post::VillageCadre, Post::VillageHead];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Post::VillageLeader => "village_leader",
            Post::VillageCadre => "village_cadre",
            Post::VillageHead => "village_head",
        }
    }

    /// Chinese name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Post::VillageLeader => "包村领导",
            Post::VillageCadre => "包村干部",
            Post::VillageHead => "村领导",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Post> {
        Post::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// What the quota counts, its target and its period.
    pub fn quota(self, q: &Quotas) -> Quota {
        match self {
            Post::VillageLeader => Quota {
                measure: "households",
                measure_zh: "走访户数",
                basis_zh: "每轮活动",
                target: q.village_leader_households,
                count: 0,
                met: false,
            },
            Post::VillageCadre => Quota {
                measure: "households",
                measure_zh: "走访户数",
                basis_zh: "每年",
                target: q.village_cadre_households,
                count: 0,
                met: false,
            },
            Post::VillageHead => Quota {
                measure: "visits",
                measure_zh: "走访户次",
                basis_zh: "每年",
                target: q.village_head_visits,
                count: 0,
                met: false,
            },
        }
    }
}

/// A cadre's quota and how far the period's count goes towards it. The
/// quota is stated per campaign or per year; ask for the campaign's or the
/// year's period to compare like with like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Quota {
    /// `households` (distinct) or `visits`.
    pub measure: &'static str,
    /// The same in Chinese.
    pub measure_zh: &'static str,
    /// The quota's own period in Chinese (每轮活动 / 每年).
    pub basis_zh: &'static str,
    /// The quota.
    pub target: i64,
    /// The period's count of `measure`.
    pub count: i64,
    /// `count >= target`.
    pub met: bool,
}

/// Petition figures of a group of petitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PetitionFigures {
    /// Petitions recorded in the period.
    pub petitions: i64,
    /// Of them, still open or in progress.
    pub unfinished: i64,
    /// Resolved (办结, not yet struck off).
    pub resolved: i64,
    /// Struck off (销号).
    pub closed: i64,
    /// Overdue today.
    pub overdue: i64,
    /// Resolved or closed with a deadline, on or before it.
    pub resolved_on_time: i64,
    /// Resolved or closed with a deadline.
    pub resolved_with_deadline: i64,
    /// `resolved_on_time / resolved_with_deadline`, percent.
    pub on_time_rate: Option<f64>,
    /// Resolved or closed with feedback to the resident.
    pub with_feedback: i64,
    /// `with_feedback / (resolved + closed)`, percent.
    pub feedback_rate: Option<f64>,
    /// Rated by the resident.
    pub rated: i64,
    /// Rated satisfied or basically satisfied.
    pub satisfied: i64,
    /// `satisfied / rated`, percent.
    pub satisfaction_rate: Option<f64>,
}

impl PetitionFigures {
    fn add(&mut self, c: &PetitionCounts) {
        self.petitions += c.petitions;
        match c.status {
            PetitionStatus::Open | PetitionStatus::InProgress => self.unfinished += c.petitions,
            PetitionStatus::Resolved => self.resolved += c.petitions,
            PetitionStatus::Closed => self.closed += c.petitions,
        }
        self.overdue += c.overdue;
        self.resolved_on_time += c.on_time;
        self.resolved_with_deadline += c.done_with_deadline;
        self.with_feedback += c.done_with_feedback;
        self.rated += c.rated;
        self.satisfied += c.satisfied;
    }

    fn finish(mut self) -> Self {
        self.on_time_rate = rate(self.resolved_on_time, self.resolved_with_deadline);
        self.feedback_rate = rate(self.with_feedback, self.resolved + self.closed);
        self.satisfaction_rate = rate(self.satisfied, self.rated);
        self
    }
}

/// `part / whole` in percent, one decimal; `None` when `whole` is 0.
pub fn rate(part: i64, whole: i64) -> Option<f64> {
    if whole <= 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = part as f64 * 100.0 / whole as f64;
    Some((r * 10.0).round() / 10.0)
}

/// A rate against its target.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Target {
    /// The rate, percent (`None`: nothing to measure).
    pub rate: Option<f64>,
    /// The target, percent.
    pub target: f64,
    /// `rate >= target` (`None` when there is no rate).
    pub met: Option<bool>,
}

fn target(rate: Option<f64>, target: f64) -> Target {
    Target {
        rate,
        target,
        met: rate.map(|r| r >= target),
    }
}

/// Visit figures, aid in yuan beside fen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VisitFigures {
    pub visits: i64,
    /// Distinct households.
    pub households: i64,
    /// Distinct enterprises.
    pub enterprises: i64,
    /// Follow-up visits (回访).
    pub follow_ups: i64,
    /// Visits to needy residents.
    pub needy_visits: i64,
    pub key_person_visits: i64,
    /// Visits in which money or goods were handed over.
    pub aided_visits: i64,
    /// Money handed over, in fen.
    pub aid_money_fen: i64,
    /// The same in yuan.
    pub aid_money_yuan: f64,
    /// Matters solved on the spot.
    pub resolved_on_spot: i64,
}

impl From<&VisitCounts> for VisitFigures {
    fn from(c: &VisitCounts) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let yuan = c.aid_money_fen as f64 / 100.0;
        VisitFigures {
            visits: c.visits,
            households: c.households,
            enterprises: c.enterprises,
            follow_ups: c.follow_ups,
            needy_visits: c.needy_visits,
            key_person_visits: c.key_person_visits,
            aided_visits: c.aided_visits,
            aid_money_fen: c.aid_money_fen,
            aid_money_yuan: yuan,
            resolved_on_spot: c.resolved_on_spot,
        }
    }
}

/// One cadre's line.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CadreStats {
    /// 1 = most households (then most visits).
    pub rank: usize,
    pub username: String,
    pub name: String,
    pub unit_code: String,
    pub unit_name: String,
    /// Post code.
    pub post: &'static str,
    /// Post in Chinese.
    pub post_zh: &'static str,
    #[serde(flatten)]
    pub visits: VisitFigures,
    /// The quota of their post.
    pub quota: Quota,
    #[serde(flatten)]
    pub petitions: PetitionFigures,
    /// No visit and no petition in the period (零战果).
    pub nothing_reported: bool,
}

/// One unit's line (units that have cadres of their own).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UnitStats {
    /// 1 = most households (then most visits).
    pub rank: usize,
    pub code: String,
    pub name: String,
    pub cadres: usize,
    /// Its cadres who met their quota.
    pub cadres_meeting_quota: usize,
    /// Visits (households distinct within the unit).
    #[serde(flatten)]
    pub visits: VisitFigures,
    #[serde(flatten)]
    pub petitions: PetitionFigures,
    /// None of its cadres reported anything (零战果).
    pub nothing_reported: bool,
}

/// A line of a ranking: cadres and units are ranked by the same rule.
trait Ranked {
    /// Its visit figures, and the name that breaks a tie (username, unit
    /// code).
    fn ranking(&self) -> (&VisitFigures, &str);
    /// Sets its 1-based place.
    fn set_rank(&mut self, rank: usize);
}

impl Ranked for CadreStats {
    fn ranking(&self) -> (&VisitFigures, &str) {
        (&self.visits, &self.username)
    }

    fn set_rank(&mut self, rank: usize) {
        self.rank = rank;
    }
}

impl Ranked for UnitStats {
    fn ranking(&self) -> (&VisitFigures, &str) {
        (&self.visits, &self.code)
    }

    fn set_rank(&mut self, rank: usize) {
        self.rank = rank;
    }
}

/// Sorts `lines` by households, then visits (most first), then name, and
/// numbers them from 1.
fn rank<T: Ranked>(lines: &mut [T]) {
    lines.sort_by(|a, b| {
        let ((a, a_name), (b, b_name)) = (a.ranking(), b.ranking());
        (b.households, b.visits, a_name).cmp(&(a.households, a.visits, b_name))
    });
    for (i, line) in lines.iter_mut().enumerate() {
        line.set_rank(i + 1);
    }
}

/// Petitions of one category, status or level.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub code: &'static str,
    /// Chinese label.
    pub label_zh: &'static str,
    #[serde(flatten)]
    pub figures: PetitionFigures,
}

/// The whole answer but its header.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Everything in the subtree and period.
    pub totals: Totals,
    /// By category (all four, zeros included).
    pub by_category: Vec<Breakdown>,
    pub by_status: Vec<Breakdown>,
    pub by_level: Vec<Breakdown>,
    /// Cadres, ranked.
    pub cadres: Vec<CadreStats>,
    /// Units with cadres, ranked.
    pub units: Vec<UnitStats>,
    /// 零战果: who reported nothing.
    pub nothing_reported: NothingReported,
}

/// Totals with the targets.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Visits (households distinct across the subtree).
    #[serde(flatten)]
    pub visits: VisitFigures,
    #[serde(flatten)]
    pub petitions: PetitionFigures,
    /// Cadres in the subtree.
    pub cadres: usize,
    /// Of them, meeting their quota.
    pub cadres_meeting_quota: usize,
    /// Feedback rate against its target.
    pub feedback: Target,
    /// Satisfaction rate against its target.
    pub satisfaction: Target,
}

/// Cadres and units with nothing reported in the period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NothingReported {
    /// Usernames.
    pub cadres: Vec<String>,
    /// Unit codes.
    pub units: Vec<String>,
}

/// The counts [`compute`] works from.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Units of the subtree.
    pub units: Vec<Unit>,
    /// Users of the subtree (only cadres are counted).
    pub users: Vec<User>,
    /// Posts by user id.
    pub posts: BTreeMap<i64, Post>,
    /// Visit counts per owner.
    pub visits_by_owner: Vec<VisitCounts>,
    /// Visit counts per unit.
    pub visits_by_unit: Vec<VisitCounts>,
    /// Visit counts of everything.
    pub visits_total: VisitCounts,
    /// Petition counts.
    pub petitions: Vec<PetitionCounts>,
}

/// The statistics of `counts` against `quotas`.
pub fn compute(counts: &Counts, quotas: &Quotas) -> Stats {
    let units: BTreeMap<i64, &Unit> = counts.units.iter().map(|u| (u.id, u)).collect();
    let by_owner: BTreeMap<i64, &VisitCounts> =
        counts.visits_by_owner.iter().map(|v| (v.key, v)).collect();
    let by_unit: BTreeMap<i64, &VisitCounts> =
        counts.visits_by_unit.iter().map(|v| (v.key, v)).collect();
    let zero = VisitCounts::default();

    let mut petitions_by_owner: BTreeMap<i64, PetitionFigures> = BTreeMap::new();
    let mut petitions_by_unit: BTreeMap<i64, PetitionFigures> = BTreeMap::new();
    let mut total = PetitionFigures::default();
    let mut by_category: BTreeMap<&str, PetitionFigures> = BTreeMap::new();
    let mut by_status: BTreeMap<&str, PetitionFigures> = BTreeMap::new();
    let mut by_level: BTreeMap<&str, PetitionFigures> = BTreeMap::new();
    for c in &counts.petitions {
        petitions_by_owner
            .entry(c.owner_user_id)
            .or_default()
            .add(c);
        petitions_by_unit.entry(c.unit_id).or_default().add(c);
        total.add(c);
        by_category.entry(c.category.as_str()).or_default().add(c);
        by_status.entry(c.status.as_str()).or_default().add(c);
        by_level.entry(c.level.as_str()).or_default().add(c);
    }

    let mut cadres: Vec<CadreStats> = counts
        .users
        .iter()
        .filter(|u| u.role == Role::Cadre && units.contains_key(&u.unit_id))
        .map(|u| {
            let v = by_owner.get(&u.id).copied().unwrap_or(&zero);
            let p = petitions_by_owner.get(&u.id).cloned().unwrap_or_default();
            let post = counts.posts.get(&u.id).copied().unwrap_or_default();
            let mut quota = post.quota(quotas);
            quota.count = if quota.measure == "visits" {
                v.visits
            } else {
                v.households
            };
            quota.met = quota.count >= quota.target;
            let unit = units[&u.unit_id];
            CadreStats {
                rank: 0,
                username: u.username.clone(),
                name: u.display_name.clone(),
                unit_code: unit.code.clone(),
                unit_name: unit.name.clone(),
                post: post.as_str(),
                post_zh: post.label_zh(),
                nothing_reported: v.visits == 0 && p.petitions == 0,
                visits: VisitFigures::from(v),
                quota,
                petitions: p.finish(),
            }
        })
        .collect();
    rank(&mut cadres);

    let mut unit_lines: Vec<UnitStats> = counts
        .units
        .iter()
        .filter_map(|unit| {
            let own: Vec<&CadreStats> =
                cadres.iter().filter(|c| c.unit_code == unit.code).collect();
            if own.is_empty() {
                return None;
            }
            let v = by_unit.get(&unit.id).copied().unwrap_or(&zero);
            Some(UnitStats {
                rank: 0,
                code: unit.code.clone(),
                name: unit.name.clone(),
                cadres: own.len(),
                cadres_meeting_quota: own.iter().filter(|c| c.quota.met).count(),
                nothing_reported: own.iter().all(|c| c.nothing_reported),
                visits: VisitFigures::from(v),
                petitions: petitions_by_unit
                    .get(&unit.id)
                    .cloned()
                    .unwrap_or_default()
                    .finish(),
            })
        })
        .collect();
    rank(&mut unit_lines);

    let total = total.finish();
    let breakdown =
        |map: &BTreeMap<&str, PetitionFigures>, code: &'static str, zh: &'static str| Breakdown {
            code,
            label_zh: zh,
            figures: map.get(code).cloned().unwrap_or_default().finish(),
        };
    Stats {
        totals: Totals {
            visits: VisitFigures::from(&counts.visits_total),
            cadres: cadres.len(),
            cadres_meeting_quota: cadres.iter().filter(|c| c.quota.met).count(),
            feedback: target(total.feedback_rate, quotas.feedback_rate_target),
            satisfaction: target(total.satisfaction_rate, quotas.satisfaction_rate_target),
            petitions: total,
        },
        by_category: Category::ALL
            .iter()
            .map(|c| breakdown(&by_category, c.as_str(), c.label_zh()))
            .collect(),
        by_status: PetitionStatus::ALL
            .iter()
            .map(|s| breakdown(&by_status, s.as_str(), s.label_zh()))
            .collect(),
        by_level: Level::ALL
            .iter()
            .map(|l| breakdown(&by_level, l.as_str(), l.label_zh()))
            .collect(),
        nothing_reported: NothingReported {
            cadres: cadres
                .iter()
                .filter(|c| c.nothing_reported)
                .map(|c| c.username.clone())
                .collect(),
            units: unit_lines
                .iter()
                .filter(|u| u.nothing_reported)
                .map(|u| u.code.clone())
                .collect(),
        },
        cadres,
        units: unit_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn unit(id: i64, code: &str) -> Unit {
        Unit {
            id,
            code: code.into(),
            name: code.into(),
            parent_id: None,
            kind: "village".into(),
        }
    }

    fn cadre(id: i64, name: &str, unit_id: i64) -> User {
        User {
            id,
            username: name.into(),
            display_name: name.into(),
            role: Role::Cadre,
            unit_id,
            password_hash: String::new(),
            created_at: Utc::now(),
            disabled: false,
        }
    }

    fn petitions(
        owner: i64,
        unit: i64,
        category: Category,
        status: PetitionStatus,
        n: i64,
    ) -> PetitionCounts {
        PetitionCounts {
            owner_user_id: owner,
            unit_id: unit,
            category,
            status,
            level: Level::Village,
            petitions: n,
            overdue: 0,
            on_time: 0,
            done_with_deadline: 0,
            done_with_feedback: 0,
            rated: 0,
            satisfied: 0,
        }
    }

    /// Hand-counted: a (village_head) 3 visits, 2 households; b 1 visit; c
    /// nothing; unit v2 (c only) reported nothing.
    #[test]
    fn quotas_rates_zero_results_and_ranks() {
        let counts = Counts {
            units: vec![unit(1, "v1"), unit(2, "v2")],
            users: vec![cadre(10, "a", 1), cadre(11, "b", 1), cadre(12, "c", 2)],
            posts: BTreeMap::from([(10, Post::VillageHead)]),
            visits_by_owner: vec![
                VisitCounts {
                    key: 10,
                    visits: 3,
                    households: 2,
                    aid_money_fen: 50_000,
                    ..VisitCounts::default()
                },
                VisitCounts {
                    key: 11,
                    visits: 1,
                    households: 1,
                    ..VisitCounts::default()
                },
            ],
            visits_by_unit: vec![VisitCounts {
                key: 1,
                visits: 4,
                households: 2,
                ..VisitCounts::default()
            }],
            visits_total: VisitCounts {
                visits: 4,
                households: 2,
                ..VisitCounts::default()
            },
            petitions: vec![
                PetitionCounts {
                    on_time: 1,
                    done_with_deadline: 2,
                    done_with_feedback: 2,
                    rated: 2,
                    satisfied: 1,
                    ..petitions(
                        10,
                        1,
                        Category::PracticalDifficulty,
                        PetitionStatus::Resolved,
                        2,
                    )
                },
                PetitionCounts {
                    overdue: 1,
                    ..petitions(11, 1, Category::CadreConduct, PetitionStatus::Open, 1)
                },
                PetitionCounts {
                    done_with_feedback: 0,
                    ..petitions(11, 1, Category::CadreConduct, PetitionStatus::Closed, 1)
                },
            ],
        };
        let quotas = Quotas {
            village_head_visits: 3,
            ..Quotas::default()
        };
        let s = compute(&counts, &quotas);
        assert_eq!(
            s.cadres
                .iter()
                .map(|c| c.username.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let a = &s.cadres[0];
        assert_eq!(
            (
                a.rank,
                a.post_zh,
                a.quota.measure,
                a.quota.count,
                a.quota.met
            ),
            (1, "村领导", "visits", 3, true)
        );
        assert!((a.visits.aid_money_yuan - 500.0).abs() < f64::EPSILON);
        let b = &s.cadres[1];
        assert_eq!(
            (b.quota.target, b.quota.count, b.quota.met),
            (120, 1, false)
        );
        assert_eq!(b.petitions.overdue, 1);
        assert_eq!(s.nothing_reported.cadres, ["c"]);
        assert_eq!(s.nothing_reported.units, ["v2"]);
        assert_eq!(
            s.units
                .iter()
                .map(|u| (u.code.as_str(), u.rank, u.cadres))
                .collect::<Vec<_>>(),
            [("v1", 1, 2), ("v2", 2, 1)]
        );
        let t = &s.totals;
        assert_eq!(
            (
                t.petitions.petitions,
                t.petitions.unfinished,
                t.petitions.resolved,
                t.petitions.closed
            ),
            (4, 1, 2, 1)
        );
        // 2 of 3 resolved/closed had feedback; 1 of 2 ratings satisfied; 1 of 2 on time.
        assert_eq!(t.petitions.feedback_rate, Some(66.7));
        assert_eq!(t.feedback.met, Some(false));
        assert_eq!(t.petitions.satisfaction_rate, Some(50.0));
        assert_eq!(t.petitions.on_time_rate, Some(50.0));
        assert_eq!((t.cadres, t.cadres_meeting_quota), (3, 1));
        let conduct = s
            .by_category
            .iter()
            .find(|c| c.code == "cadre_conduct")
            .expect("category");
        assert_eq!(
            (conduct.label_zh, conduct.figures.petitions),
            ("干部作风", 2)
        );
        assert_eq!(s.by_category.len(), 4);
        assert_eq!(rate(1, 0), None);
    }
}
