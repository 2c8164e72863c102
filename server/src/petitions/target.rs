//! Which petition a request means, and who may act on it.

use std::collections::HashMap;

use sync_core::records::petition::Level;
use sync_core::{DocumentId, RecordId};

use super::ActionError;
use crate::auth::AuthUser;
use crate::store::{Role, Store, Unit};

/// A petition located in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The diary holding it.
    pub document_id: DocumentId,
    /// Its record id.
    pub petition_id: RecordId,
    /// The diary's owner.
    pub owner_user_id: i64,
    /// The owner's unit.
    pub unit_id: i64,
}

/// Finds the petition `petition_id` (in `document_id`, when given). Record
/// ids come from phones, so two diaries may hold the same one; then the
/// caller must name the diary.
pub async fn locate(
    store: &dyn Store,
    petition_id: &str,
    document_id: Option<&str>,
) -> Result<Target, ActionError> {
    let id: RecordId = petition_id.parse().map_err(|_| ActionError::NotFound)?;
    let mut found = store.find_petitions(&id.to_string()).await?;
    if let Some(d) = document_id {
        found.retain(|l| l.document_id.to_string() == d);
    }
    match found.as_slice() {
        [] => Err(ActionError::NotFound),
        [one] => Ok(Target {
            document_id: one.document_id,
            petition_id: id,
            owner_user_id: one.owner_user_id,
            unit_id: one.unit_id,
        }),
        _ => Err(ActionError::Ambiguous(id.to_string())),
    }
}

/// What a supervisor may do to one petition, worked out before its diary
/// is loaded: the units that receive it at each level (分级建账), and at
/// which levels the supervisor's unit is that unit or above it.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The unit that handles the item at each level: the owner's unit or
    /// the ancestor of the level's kind (`village`, `town`, `county`), or
    /// the ancestor as many steps up when no unit has that kind.
    pub receiving: HashMap<Level, Unit>,
    /// Levels whose receiving unit lies within the supervisor's subtree: at
    /// those the supervisor may sign the item off.
    pub within: Vec<Level>,
}

impl Reach {
    /// Refuses unless `caller` is a supervisor (403) whose subtree holds the
    /// petition's diary owner (404 otherwise: a petition out of reach looks
    /// exactly like one that does not exist); then works out the rest.
    pub async fn of_supervisor(
        store: &dyn Store,
        caller: &AuthUser,
        target: &Target,
    ) -> Result<Self, ActionError> {
        if caller.role != Role::Supervisor {
            return Err(ActionError::Forbidden(
                "only a supervisor may do this".to_owned(),
            ));
        }
        if !store.is_unit_within(target.unit_id, caller.unit_id).await? {
            return Err(ActionError::NotFound);
        }
        let mut chain: Vec<Unit> = Vec::new();
        let mut next = Some(target.unit_id);
        // The tree has no cycles (a unit only points at an older one), but a
        // bound costs nothing.
        while let Some(id) = next.filter(|_| chain.len() < 64) {
            let Some(unit) = store.get_unit(id).await? else {
                break;
            };
            next = unit.parent_id;
            chain.push(unit);
        }
        let mut reach = Reach::default();
        for (steps, level) in [Level::Village, Level::Town, Level::County]
            .into_iter()
            .enumerate()
        {
            let unit = chain
                .iter()
                .find(|u| u.kind == level.as_str())
                .or_else(|| chain.get(steps.min(chain.len().saturating_sub(1))));
            let Some(unit) = unit else { continue };
            if store.is_unit_within(unit.id, caller.unit_id).await? {
                reach.within.push(level);
            }
            reach.receiving.insert(level, unit.clone());
        }
        Ok(reach)
    }
}
