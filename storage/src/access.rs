//! Who may do what to which row: the manifest's policies compiled per entity, and the
//! questions the entity API, the write path and the change feeds ask of them.
//!
//! Resolution: read uses `allowRead`, else `allow`; insert/update/delete use
//! `allowInsert`/`allowUpdate`/`allowDelete`, else `allowWrite`, else `allow`. Several
//! policies on one entity are alternatives (any one allowing is enough). An admin passes
//! every rule. Secure default: outside dev mode an entity with no policy is admin-only;
//! in dev mode it is open.
//!
//! Writes are checked on both sides:
//! - insert: the rule holds for the new row (`old.` is null);
//! - update: the caller can read the row as it is (else the row is reported missing,
//!   like one that does not exist), and one rule holds both for the row as it is and for
//!   the row as it will be (`old.` is the row as it is in both checks);
//! - delete: the caller can read the row, and the rule holds for it.
//!
//! Reads reveal nothing hidden: a change event reaches a caller who can read the row
//! before or after the write. One who could read it before but not after receives it as
//! a delete (the row left their view); one who could read neither receives nothing, so
//! their feed shows a gap in `seq`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::entity::{ChangeEvent, ChangeKind, Row, Verdict};
use crate::manifest::Manifest;
use crate::policy::{CallerFacts, EvalContext, Residual, Rule};

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read a row (also: receive its change events).
    Read,
    /// Create a row.
    Insert,
    /// Change a row.
    Update,
    /// Remove a row.
    Delete,
}

impl From<ChangeKind> for Access {
    fn from(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::Insert => Self::Insert,
            ChangeKind::Update => Self::Update,
            ChangeKind::Delete => Self::Delete,
        }
    }
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// The caller a policy is asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user id (`None`: anonymous).
    pub user_id: Option<String>,
    /// Whether the caller holds the admin token.
    pub is_admin: bool,
    /// Roles (none today: sessions carry no roles yet).
    pub roles: Vec<String>,
}

impl Caller {
    /// An anonymous caller.
    #[must_use]
    pub fn anonymous() -> Self {
        Self::default()
    }

    fn facts(&self) -> CallerFacts<'_> {
        CallerFacts {
            user_id: self.user_id.as_deref(),
            is_admin: self.is_admin,
            roles: &self.roles,
        }
    }
}

/// Which rows of an entity a caller can read, decided before any row is seen.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadScope {
    /// Every row.
    All,
    /// No row.
    Nothing,
    /// Rows with these field values; `exact`: the values are the whole rule (a store
    /// count of them is the count of visible rows), else each row found must still pass
    /// [`Policies::can_read`].
    Where {
        /// `(field, value)` pairs every visible row has.
        equal: Vec<(String, Value)>,
        /// Whether they are all the rule asks.
        exact: bool,
    },
}

/// How a change event reaches one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// As it is.
    AsIs,
    /// As a delete of the row (the caller could read it before, not after).
    AsDelete,
}

struct Named {
    policy: String,
    rule: Rule,
}

#[derive(Default)]
struct EntityRules {
    read: Vec<Named>,
    insert: Vec<Named>,
    update: Vec<Named>,
    delete: Vec<Named>,
}

impl EntityRules {
    fn list(&self, access: Access) -> &[Named] {
        match access {
            Access::Read => &self.read,
            Access::Insert => &self.insert,
            Access::Update => &self.update,
            Access::Delete => &self.delete,
        }
    }
}

/// Compiled policies.
pub struct Policies {
    open_by_default: bool,
    rules: BTreeMap<String, EntityRules>,
}

impl Policies {
    /// Compiles `manifest`'s policies; returns them and warnings for the start-up log
    /// (rules that do not parse, and which deny; entities left admin-only).
    #[must_use]
    pub fn compile(manifest: &Manifest, dev_mode: bool) -> (Self, Vec<String>) {
        let mut rules: BTreeMap<String, EntityRules> = BTreeMap::new();
        let mut warnings = Vec::new();
        for p in &manifest.policies {
            let entry = rules.entry(p.entity.clone()).or_default();
            let mut add = |list: &mut Vec<Named>, src: Option<&String>| {
                let Some(src) = src else { return };
                let rule = Rule::parse(src);
                if let Some(e) = rule.error() {
                    warnings.push(format!(
                        "policy {} ({}): {e}; this rule denies everything",
                        p.name, p.entity
                    ));
                }
                list.push(Named { policy: p.name.clone(), rule });
            };
            let write = p.allow_write.as_ref().or(p.allow.as_ref());
            add(&mut entry.read, p.allow_read.as_ref().or(p.allow.as_ref()));
            add(&mut entry.insert, p.allow_insert.as_ref().or(write));
            add(&mut entry.update, p.allow_update.as_ref().or(write));
            add(&mut entry.delete, p.allow_delete.as_ref().or(write));
        }
        if !dev_mode {
            let closed: Vec<&str> = manifest
                .entities
                .iter()
                .filter(|e| !rules.contains_key(&e.name))
                .map(|e| e.name.as_str())
                .collect();
            if !closed.is_empty() {
                warnings.push(format!(
                    "entities without a policy are admin-only: {}",
                    closed.join(", ")
                ));
            }
        }
        (Self { open_by_default: dev_mode, rules }, warnings)
    }

    /// Whether any rule for `access` on `entity` holds for `caller` with `data` and `old`.
    fn holds(
        &self,
        entity: &str,
        access: Access,
        caller: &Caller,
        data: Option<&Row>,
        old: Option<&Row>,
    ) -> bool {
        if caller.is_admin {
            return true;
        }
        let Some(rules) = self.rules.get(entity) else {
            return self.open_by_default;
        };
        let facts = caller.facts();
        let ctx =
            EvalContext { user_id: facts.user_id, is_admin: false, roles: facts.roles, data, old };
        rules.list(access).iter().any(|n| n.rule.allows(&ctx))
    }

    /// Whether `caller` may read `row` of `entity`.
    #[must_use]
    pub fn can_read(&self, entity: &str, caller: &Caller, row: &Row) -> bool {
        self.holds(entity, Access::Read, caller, Some(row), None)
    }

    /// Whether `caller` may do `kind` to `entity`, going from `before` (update, delete)
    /// to `after` (insert, update). See the module doc for the rules.
    #[must_use]
    pub fn check_write(
        &self,
        entity: &str,
        kind: ChangeKind,
        caller: &Caller,
        before: Option<&Row>,
        after: Option<&Row>,
    ) -> Verdict {
        if caller.is_admin {
            return Verdict::Allow;
        }
        if let Some(before) = before
            && !self.can_read(entity, caller, before)
        {
            return Verdict::Hidden;
        }
        let access = Access::from(kind);
        let allowed = match self.rules.get(entity) {
            None => self.open_by_default,
            Some(rules) => {
                let facts = caller.facts();
                let ctx = |data| EvalContext {
                    user_id: facts.user_id,
                    is_admin: false,
                    roles: facts.roles,
                    data,
                    old: before,
                };
                rules.list(access).iter().any(|n| {
                    [before, after].into_iter().flatten().all(|row| n.rule.allows(&ctx(Some(row))))
                })
            }
        };
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny(self.denial_hint(entity, access, caller))
        }
    }

    /// Which rule refused `access` on `entity`, and what it needs.
    #[must_use]
    pub fn denial_hint(&self, entity: &str, access: Access, caller: &Caller) -> String {
        let verb = access.as_str();
        let Some(rules) = self.rules.get(entity) else {
            return format!("{entity} has no policy, so only the admin token may {verb} it");
        };
        let list = rules.list(access);
        if list.is_empty() {
            return format!("no policy of {entity} allows {verb}; only the admin token may");
        }
        let needs: Vec<String> = list
            .iter()
            .map(|n| format!("policy {:?} needs {}", n.policy, n.rule.source()))
            .collect();
        let side = match access {
            Access::Update => " (for the row as it is and as it would be)",
            Access::Insert => " (for the new row)",
            Access::Delete | Access::Read => "",
        };
        let sign_in = if caller.user_id.is_none() {
            "; you are not signed in (POST /api/auth/guest gives a session)"
        } else {
            ""
        };
        format!("{verb} on {entity}: {}{side}{sign_in}", needs.join(" or "))
    }

    /// Which rows of `entity` `caller` can read, before looking at any.
    #[must_use]
    pub fn read_scope(&self, entity: &str, caller: &Caller) -> ReadScope {
        if caller.is_admin {
            return ReadScope::All;
        }
        let Some(rules) = self.rules.get(entity) else {
            return if self.open_by_default { ReadScope::All } else { ReadScope::Nothing };
        };
        let facts = caller.facts();
        let mut left = Vec::new();
        for named in &rules.read {
            match named.rule.residual(&facts) {
                Residual::Always => return ReadScope::All,
                Residual::Never => {}
                Residual::Depends(expr) => left.push(expr),
            }
        }
        match left.as_slice() {
            [] => ReadScope::Nothing,
            [one] => {
                let (equal, exact) = one.required_equalities();
                ReadScope::Where { equal, exact }
            }
            _ => ReadScope::Where { equal: Vec::new(), exact: false },
        }
    }

    /// How `event` reaches `caller`, if at all (see the module doc).
    #[must_use]
    pub fn project(&self, event: &ChangeEvent, caller: &Caller) -> Option<Projection> {
        let can = |row: Option<&Row>| row.is_some_and(|r| self.can_read(&event.entity, caller, r));
        match event.kind {
            ChangeKind::Insert => can(event.data.as_ref()).then_some(Projection::AsIs),
            ChangeKind::Delete => can(event.before.as_ref()).then_some(Projection::AsIs),
            ChangeKind::Update => {
                if can(event.data.as_ref()) {
                    Some(Projection::AsIs)
                } else if can(event.before.as_ref()) {
                    Some(Projection::AsDelete)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    fn policies(dev: bool) -> Policies {
        let manifest = Manifest::parse(
            r#"{"manifest_version":1,"name":"t","version":"1","entities":[
                {"name":"Item","fields":[{"name":"owner","type":"string"},{"name":"n","type":"int"}],
                 "indexes":[{"name":"by_owner","fields":["owner"],"unique":false}]},
                {"name":"Open","fields":[{"name":"n","type":"int"}]},
                {"name":"Locked","fields":[{"name":"n","type":"int"}]}],
              "policies":[
                {"name":"own items","entity":"Item","allow":"auth.isAdmin || auth.userId == data.owner"},
                {"name":"open","entity":"Open","allowRead":"true","allowUpdate":"auth.userId != null && data.n >= 0"}]}"#,
        )
        .unwrap()
        .0;
        Policies::compile(&manifest, dev).0
    }

    fn row(v: serde_json::Value) -> Row {
        v.as_object().unwrap().clone()
    }

    fn user(id: &str) -> Caller {
        Caller { user_id: Some(id.into()), ..Caller::default() }
    }

    /// The takeover: a patch that moves someone else's row to the caller is refused
    /// (reported as missing, since the caller cannot read the row as it is); the owner
    /// may not give a row away either, since the rule must hold after the change too.
    #[test]
    fn updates_are_checked_before_and_after() {
        let p = policies(false);
        let theirs = row(json!({"id": "1", "owner": "bob", "n": 1}));
        let taken = row(json!({"id": "1", "owner": "eve", "n": 1}));
        let v =
            p.check_write("Item", ChangeKind::Update, &user("eve"), Some(&theirs), Some(&taken));
        assert_eq!(v, Verdict::Hidden);
        let v =
            p.check_write("Item", ChangeKind::Update, &user("bob"), Some(&theirs), Some(&taken));
        assert!(matches!(v, Verdict::Deny(ref hint) if hint.contains("own items")), "{v:?}");
        let more = row(json!({"id": "1", "owner": "bob", "n": 2}));
        let v = p.check_write("Item", ChangeKind::Update, &user("bob"), Some(&theirs), Some(&more));
        assert_eq!(v, Verdict::Allow);
        assert_eq!(
            p.check_write("Item", ChangeKind::Delete, &user("eve"), Some(&theirs), None),
            Verdict::Hidden
        );
        assert_eq!(
            p.check_write("Item", ChangeKind::Delete, &user("bob"), Some(&theirs), None),
            Verdict::Allow
        );
        let admin = Caller { is_admin: true, ..Caller::default() };
        assert_eq!(
            p.check_write("Item", ChangeKind::Update, &admin, Some(&theirs), Some(&taken)),
            Verdict::Allow
        );
    }

    /// A readable row whose write rule fails is a denial with a hint naming the rule;
    /// an entity without a policy is admin-only outside dev mode, open in dev mode.
    #[test]
    fn denials_name_the_rule() {
        let p = policies(false);
        let before = row(json!({"id": "1", "n": 1}));
        let after = row(json!({"id": "1", "n": -1}));
        match p.check_write("Open", ChangeKind::Update, &user("u"), Some(&before), Some(&after)) {
            Verdict::Deny(hint) => {
                assert!(hint.contains("data.n >= 0") || hint.contains("\"open\""), "{hint}")
            }
            other => panic!("{other:?}"),
        }
        match p.check_write(
            "Open",
            ChangeKind::Update,
            &Caller::anonymous(),
            Some(&before),
            Some(&before),
        ) {
            Verdict::Deny(hint) => assert!(hint.contains("not signed in"), "{hint}"),
            other => panic!("{other:?}"),
        }
        match p.check_write("Locked", ChangeKind::Insert, &user("u"), None, Some(&before)) {
            Verdict::Deny(hint) => assert!(hint.contains("admin"), "{hint}"),
            other => panic!("{other:?}"),
        }
        let dev = policies(true);
        assert_eq!(
            dev.check_write("Locked", ChangeKind::Insert, &user("u"), None, Some(&before)),
            Verdict::Allow
        );
    }

    /// Read scopes: an owner rule becomes an exact indexed equality; constant rules
    /// become all or nothing.
    #[test]
    fn read_scopes() {
        let p = policies(false);
        assert_eq!(
            p.read_scope("Item", &user("bob")),
            ReadScope::Where { equal: vec![("owner".into(), json!("bob"))], exact: true }
        );
        // `auth.userId == data.owner` with no user: `data.owner == null`, checked per row.
        assert_eq!(
            p.read_scope("Item", &Caller::anonymous()),
            ReadScope::Where { equal: vec![], exact: false }
        );
        assert_eq!(p.read_scope("Open", &Caller::anonymous()), ReadScope::All);
        assert_eq!(p.read_scope("Locked", &user("bob")), ReadScope::Nothing);
        assert_eq!(
            p.read_scope("Item", &Caller { is_admin: true, ..Caller::default() }),
            ReadScope::All
        );
    }

    /// Events: the new owner sees an update, the old owner sees a delete, a stranger
    /// sees nothing.
    #[test]
    fn projections() {
        let p = policies(false);
        let event = ChangeEvent {
            seq: 1,
            entity: "Item".into(),
            row_id: "1".into(),
            kind: ChangeKind::Update,
            data: Some(row(json!({"id": "1", "owner": "eve", "n": 1}))),
            timestamp: String::new(),
            before: Some(row(json!({"id": "1", "owner": "bob", "n": 1}))),
        };
        assert_eq!(p.project(&event, &user("eve")), Some(Projection::AsIs));
        assert_eq!(p.project(&event, &user("bob")), Some(Projection::AsDelete));
        assert_eq!(p.project(&event, &user("carol")), None);
    }
}
