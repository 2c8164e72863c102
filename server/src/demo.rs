//! The demo organisation seeded by `server serve --demo`: one county, two
//! towns, four villages, a supervisor per level and twelve cadres.
//!
//! [`seed_demo`] seeds units and users; [`seed_demo_records`] (in
//! `demo/records.rs`) adds every cadre's diary and contacts documents with
//! their ledger rows. They are separate so tests that want an empty
//! organisation stay fast.

mod records;

pub use records::{DEMO_POSTS, DemoRecordsError, DemoRecordsSummary, seed_demo_records};

use crate::auth::password::{PasswordError, hash_password};
use crate::store::{NewUnit, NewUser, Role, Store, StoreError, Unit};

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The database refused.
    #[error("cannot seed the demo organisation")]
    Store(#[from] StoreError),
    /// Hashing the demo password failed.
    #[error("cannot hash the demo password")]
    Password(#[from] PasswordError),
    /// The database already holds units or users that are not the demo's:
    /// it is somebody's real data, and the demo's known passwords must not
    /// go into it.
    #[error(
        "the database holds {what} {name:?}, which is not part of the demo: refusing to add demo \
         accounts with a known password to real data (use an empty database for --demo)"
    )]
    NotADemoDatabase {
        /// "unit" or "user".
        what: &'static str,
        /// Its code or username.
        name: String,
    },
}

/// A demo unit: code, name, kind, parent code.
pub const DEMO_UNITS: &[(&str, &str, &str, Option<&str>)] = &[
    ("county", "示范县", "county", None),
    ("town1", "一镇", "town", Some("county")),
    ("town2", "二镇", "town", Some("county")),
    ("village1", "柳树村", "village", Some("town1")),
    ("village2", "石桥村", "village", Some("town1")),
    ("village3", "杏花村", "village", Some("town2")),
    ("village4", "河湾村", "village", Some("town2")),
];

/// A demo account: username, display name, role, unit code.
pub const DEMO_USERS: &[(&str, &str, Role, &str)] = &[
    ("admin", "系统管理员", Role::Admin, "county"),
    ("sup-county", "周建华", Role::Supervisor, "county"),
    ("sup-town1", "陈志强", Role::Supervisor, "town1"),
    ("sup-town2", "刘桂芳", Role::Supervisor, "town2"),
    ("cadre01", "张伟", Role::Cadre, "village1"),
    ("cadre02", "王芳", Role::Cadre, "village1"),
    ("cadre03", "李娜", Role::Cadre, "village1"),
    ("cadre04", "刘洋", Role::Cadre, "village2"),
    ("cadre05", "陈静", Role::Cadre, "village2"),
    ("cadre06", "杨磊", Role::Cadre, "village2"),
    ("cadre07", "赵敏", Role::Cadre, "village3"),
    ("cadre08", "黄勇", Role::Cadre, "village3"),
    ("cadre09", "周婷", Role::Cadre, "village3"),
    ("cadre10", "吴强", Role::Cadre, "village4"),
    ("cadre11", "徐丽", Role::Cadre, "village4"),
    ("cadre12", "孙涛", Role::Cadre, "village4"),
];

/// What [`seed_demo`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Units created by this run (0 when the demo was already there).
    pub units_created: usize,
    /// Users created by this run.
    pub users_created: usize,
}

/// Fails with [`DemoError::NotADemoDatabase`] if seeding would add demo
/// accounts to a store that holds any unit or user the demo does not define.
/// A demo database to which someone added accounts of their own is fine:
/// its demo accounts exist, and nothing is added.
async fn refuse_real_data(store: &dyn Store) -> Result<(), DemoError> {
    let units = store.list_units().await?;
    let ids: Vec<i64> = units.iter().map(|u| u.id).collect();
    let users = store.list_users_in_units(&ids).await?;
    let complete = DEMO_USERS
        .iter()
        .all(|(name, ..)| users.iter().any(|u| u.username == *name));
    if complete {
        return Ok(());
    }
    if let Some(unit) = units
        .iter()
        .find(|u| !DEMO_UNITS.iter().any(|(code, ..)| *code == u.code))
    {
        return Err(DemoError::NotADemoDatabase {
            what: "unit",
            name: unit.code.clone(),
        });
    }
    if let Some(user) = users
        .iter()
        .find(|u| !DEMO_USERS.iter().any(|(name, ..)| *name == u.username))
    {
        return Err(DemoError::NotADemoDatabase {
            what: "user",
            name: user.username.clone(),
        });
    }
    Ok(())
}

/// Creates the demo units and users that do not exist yet, all users with
/// `password`. Idempotent: existing units and users (matched by code and
/// username) are left exactly as they are, including their passwords. A
/// database with any other unit or user is refused untouched: `--demo`
/// never puts known passwords into real data.
pub async fn seed_demo(store: &dyn Store, password: &str) -> Result<DemoSummary, DemoError> {
    refuse_real_data(store).await?;
    let mut summary = DemoSummary::default();
    for &(code, name, kind, parent) in DEMO_UNITS {
        if store.get_unit_by_code(code).await?.is_some() {
            continue;
        }
        let parent_id = match parent {
            Some(parent) => Some(unit_by_code(store, parent).await?.id),
            None => None,
        };
        let created = store
            .create_unit(NewUnit {
                code: code.to_owned(),
                name: name.to_owned(),
                parent_id,
                kind: kind.to_owned(),
            })
            .await;
        match created {
            Ok(_) => summary.units_created += 1,
            // Another process seeding at the same moment got there first.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }

    for &(username, display_name, role, unit_code) in DEMO_USERS {
        if store.get_user_by_username(username).await?.is_some() {
            continue;
        }
        let unit = unit_by_code(store, unit_code).await?;
        // One hash (and salt) per user, as for real accounts.
        let password_hash = hash_password(password.to_owned()).await?;
        let created = store
            .create_user(NewUser {
                username: username.to_owned(),
                display_name: display_name.to_owned(),
                role,
                unit_id: unit.id,
                password_hash,
            })
            .await;
        match created {
            Ok(_) => summary.users_created += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(summary)
}

async fn unit_by_code(store: &dyn Store, code: &str) -> Result<Unit, StoreError> {
    store
        .get_unit_by_code(code)
        .await?
        .ok_or(StoreError::NotFound)
}

/// The text `serve --demo` prints after binding: where to go and who to be.
pub fn login_banner(url: &str, password: &str) -> String {
    let mut text = format!(
        "Visit diary server (demo) listening on {url}\n\
         Open {url}/ in a browser (走访台账 pages) and log in as the supervisor sup-town1, password {password}.\n\
         Log in with POST {url}/api/v1/auth/login {{\"username\", \"password\"}}.\n\
         Demo accounts (password: {password}; accounts that already existed keep their password):\n"
    );
    for &(username, display_name, role, unit_code) in DEMO_USERS {
        let unit = DEMO_UNITS
            .iter()
            .find(|u| u.0 == unit_code)
            .map_or(unit_code, |u| u.1);
        text.push_str(&format!(
            "  {username:<11} {role:<10} {unit:<6} {display_name}\n"
        ));
    }
    text
}
