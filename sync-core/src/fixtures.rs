//! Realistic records for demo data, tests and benchmarks, in the vocabulary
//! of the campaign documents (大走访 work plans and reports).

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::records::petition::{Applicant, Category, Level, NewPetition};
use crate::records::service_card::{NewServiceCard, Pairing, PairingRole};
use crate::records::visit::{
    Aid, GeoPoint, NewVisit, SixQuestions, Subject, SubjectKind, VisitKind, tags,
};
use crate::{RecordId, Timestamp};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "胡", "朱",
];
const GIVEN: &[&str] = &[
    "秀英", "建国", "桂兰", "志强", "玉珍", "德明", "海燕", "国华", "春梅", "立新", "淑芬", "长青",
];
const PLACES: &[&str] = &[
    "李家村三组",
    "王庄村五组",
    "河西社区",
    "石桥村村委会",
    "城关镇老街",
    "东山村二组",
    "新民村便民服务站",
    "柳林村一组",
];
const ENTERPRISES: &[&str] = &[
    "宏达建材有限公司",
    "绿源农业合作社",
    "鑫盛纺织厂",
    "金穗粮油加工厂",
    "顺通物流园",
];

const SITUATION: &[&str] = &[
    "家中四口人，儿子在外务工，儿媳在家照顾两个孩子上学，老人患有慢性病，参加了新农合。",
    "户主今年六十八岁，独居，享受低保，身体尚可，子女每月回来一次。",
    "种植蔬菜大棚三个，年收入约五万元，孩子在县城读高中。",
    "企业现有职工一百二十人，今年订单比去年增加两成，用工较为紧张。",
];
const DIFFICULTIES: &[&str] = &[
    "村里到镇上的道路坑洼不平，雨天出行困难。",
    "老人看病报销手续繁琐，希望能就近办理。",
    "家里房屋年久失修，屋顶漏雨，希望申请危房改造。",
    "自来水经常停水，夏天用水紧张。",
    "企业贷款难，希望政府协调银行给予支持。",
];
const WISHES: &[&str] = &[
    "想扩大养殖规模，希望得到技术指导。",
    "希望村里组织技能培训，帮助就近就业。",
    "想发展乡村旅游，开办农家乐。",
];
const OPINIONS: &[&str] = &[
    "村干部办事公道，经常上门了解情况。",
    "希望干部多下来走走，听听群众的意见。",
    "对驻村工作队的工作表示满意。",
];
const SUGGESTIONS: &[&str] = &[
    "建议在村口安装路灯，方便群众夜间出行。",
    "建议定期公开村务财务，接受群众监督。",
    "建议增加村卫生室的常用药品。",
];
const IDEAS: &[&str] = &[
    "依托本村果园发展电商销售。",
    "成立合作社，统一收购统一销售。",
    "利用闲置校舍建设老年活动中心。",
];
const MATTERS: &[(&str, Category)] = &[
    (
        "反映村组道路年久失修，雨天泥泞，学生上学不便，要求硬化道路。",
        Category::PracticalDifficulty,
    ),
    (
        "反映低保评定不够公开，希望公示评定结果。",
        Category::CadreConduct,
    ),
    (
        "反映村里垃圾清运不及时，夏季气味大。",
        Category::WorkShortcoming,
    ),
    (
        "建议利用村集体土地建设蔬菜大棚，带动群众增收。",
        Category::DevelopmentSuggestion,
    ),
    (
        "反映家中老人医保报销款迟迟未到账。",
        Category::PracticalDifficulty,
    ),
    (
        "反映个别干部办事拖拉，群众多次跑腿。",
        Category::CadreConduct,
    ),
    (
        "反映村里自来水管道老化，经常停水。",
        Category::PracticalDifficulty,
    ),
    (
        "建议组织电商培训，帮助销售本地农产品。",
        Category::DevelopmentSuggestion,
    ),
];
const RESOLVED: &[&str] = &[
    "当场讲解新农合报销政策。",
    "帮助联系镇劳动保障所办理失业登记。",
    "现场协调邻里宅基地纠纷，双方达成一致。",
];

fn pick<'a, R: Rng>(rng: &mut R, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// A Chinese personal name.
pub fn name<R: Rng>(rng: &mut R) -> String {
    format!("{}{}", pick(rng, SURNAMES), pick(rng, GIVEN))
}

/// A mainland mobile number.
pub fn phone<R: Rng>(rng: &mut R) -> String {
    format!(
        "13{}{:08}",
        rng.random_range(0..10),
        rng.random_range(0..100_000_000u32)
    )
}

/// Fresh random record id.
pub fn id<R: Rng>(rng: &mut R) -> RecordId {
    RecordId::from_random_bytes(rng.random())
}

/// A home or enterprise visit with the six questions answered.
pub fn visit<R: Rng>(rng: &mut R, at: Timestamp, cadre: &str) -> NewVisit {
    let enterprise = rng.random_bool(0.15);
    let mut visit_tags = BTreeSet::new();
    for t in [
        tags::NEEDY,
        tags::PARTY_MEMBER,
        tags::KEY_PERSON,
        tags::ENTREPRENEUR,
    ] {
        if rng.random_bool(0.2) {
            visit_tags.insert(t.to_owned());
        }
    }
    let condolence = !enterprise && rng.random_bool(0.1);
    NewVisit {
        id: id(rng),
        kind: if enterprise {
            VisitKind::EnterpriseVisit
        } else if condolence {
            VisitKind::CondolenceVisit
        } else {
            VisitKind::HomeVisit
        },
        at,
        place: pick(rng, PLACES).to_owned(),
        subject: if enterprise {
            Subject {
                kind: SubjectKind::Enterprise,
                name: pick(rng, ENTERPRISES).to_owned(),
                address: None,
            }
        } else {
            Subject {
                kind: SubjectKind::Household,
                name: name(rng),
                address: Some(format!(
                    "{}{}号",
                    pick(rng, PLACES),
                    rng.random_range(1..80)
                )),
            }
        },
        tags: visit_tags,
        participants: [cadre.to_owned()].into_iter().collect(),
        answers: SixQuestions {
            basic_situation: pick(rng, SITUATION).to_owned(),
            difficulties: pick(rng, DIFFICULTIES).to_owned(),
            income_wishes: pick(rng, WISHES).to_owned(),
            opinion_of_cadres: pick(rng, OPINIONS).to_owned(),
            work_suggestions: pick(rng, SUGGESTIONS).to_owned(),
            development_ideas: pick(rng, IDEAS).to_owned(),
        },
        notes: "走访中宣传了惠民政策，发放民情服务卡一张。".to_owned(),
        location: Some(GeoPoint {
            lat: 30.2 + rng.random_range(0.0..0.3),
            lon: 120.1 + rng.random_range(0.0..0.3),
        }),
        aid: if condolence {
            Aid {
                money_fen: 50_000,
                goods: "大米一袋、食用油一桶".to_owned(),
            }
        } else {
            Aid::default()
        },
        resolved_on_spot: if rng.random_bool(0.3) {
            vec![pick(rng, RESOLVED).to_owned()]
        } else {
            vec![]
        },
    }
}

/// A petition raised in `visit`, with a deadline a month after `now`.
pub fn petition<R: Rng>(rng: &mut R, now: Timestamp, visit: Option<RecordId>) -> NewPetition {
    let (matter, category) = MATTERS.choose(rng).copied().unwrap_or(MATTERS[0]);
    NewPetition {
        id: id(rng),
        created_event_id: id(rng),
        visit_id: visit,
        applicant: Applicant {
            name: name(rng),
            phone: Some(phone(rng)),
            address: Some(pick(rng, PLACES).to_owned()),
        },
        matter: matter.to_owned(),
        category,
        level: *[Level::Village, Level::Village, Level::Town, Level::County]
            .choose(rng)
            .unwrap_or(&Level::Village),
        responsible: None,
        deadline: now
            .china_date()
            .and_then(|d| d.checked_add(time::Duration::days(30))),
    }
}

/// A service card handed over at `at`.
pub fn card<R: Rng>(rng: &mut R, at: Timestamp) -> NewServiceCard {
    let pairing = match rng.random_range(0..4) {
        0 => Some(Pairing {
            role: PairingRole::PartyMember,
            needy: rng.random_bool(0.5),
        }),
        1 => Some(Pairing {
            role: PairingRole::Resident,
            needy: rng.random_bool(0.5),
        }),
        _ => None,
    };
    NewServiceCard {
        id: id(rng),
        resident: name(rng),
        phone: Some(phone(rng)),
        address: Some(pick(rng, PLACES).to_owned()),
        household: None,
        handed_over_at: at,
        pairing,
        notes: "已告知有事随时电话联系。".to_owned(),
    }
}

/// A 2026 diary of `owner`, written by `actor`, with `visits` visits, three
/// a day from `start`, each its own change, and a petition raised in every
/// fifth.
pub fn diary<R: Rng>(
    rng: &mut R,
    owner: &str,
    actor: automerge::ActorId,
    visits: usize,
    start: Timestamp,
) -> crate::DiaryDocument {
    let mut d = crate::DiaryDocument::create(owner, 2026, actor, &crate::Edit::new(owner, start))
        .expect("a new diary is valid");
    for i in 0..visits {
        let offset = i64::try_from(i).unwrap_or(i64::MAX) * 8 * 3_600_000;
        let at = Timestamp(start.0 + offset);
        let e = crate::Edit::new(owner, at);
        let v = visit(rng, at, owner);
        d.add_visit(&e, &v).expect("a fixture visit is valid");
        if i % 5 == 0 {
            d.add_petition(&e, &petition(rng, at, Some(v.id)))
                .expect("a fixture petition is valid");
        }
    }
    d
}
