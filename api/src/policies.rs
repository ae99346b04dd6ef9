//! The manifest's policies compiled into per-entity rules, and the one question the
//! entity API and the change feeds ask: may this caller do this to this row?
//!
//! Resolution: read uses `allowRead`, else `allow`; insert/update/delete use
//! `allowInsert`/`allowUpdate`/`allowDelete`, else `allowWrite`, else `allow`. Several
//! policies on one entity are alternatives (any one allowing is enough). The admin token
//! passes every rule. Secure default: outside dev mode an entity with no policy is
//! admin-only; in dev mode it is open.

use std::collections::BTreeMap;

use pylon_shard::Auth;
use pylon_storage::Row;
use pylon_storage::manifest::Manifest;
use pylon_storage::policy::{EvalContext, Rule};

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

#[derive(Default)]
struct EntityRules {
    read: Vec<Rule>,
    insert: Vec<Rule>,
    update: Vec<Rule>,
    delete: Vec<Rule>,
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
            let mut add = |list: &mut Vec<Rule>, src: Option<&String>| {
                if let Some(src) = src {
                    let rule = Rule::parse(src);
                    if let Some(e) = rule.error() {
                        warnings.push(format!(
                            "policy {} ({}): {e}; this rule denies everything",
                            p.name, p.entity
                        ));
                    }
                    list.push(rule);
                }
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

    /// Whether `auth` (None: anonymous) may do `access` on `entity`'s `row`.
    #[must_use]
    pub fn allows(
        &self,
        entity: &str,
        access: Access,
        auth: Option<&Auth>,
        row: Option<&Row>,
    ) -> bool {
        if auth.is_some_and(|a| a.is_admin) {
            return true;
        }
        let Some(rules) = self.rules.get(entity) else {
            return self.open_by_default;
        };
        let list = match access {
            Access::Read => &rules.read,
            Access::Insert => &rules.insert,
            Access::Update => &rules.update,
            Access::Delete => &rules.delete,
        };
        let ctx = EvalContext {
            user_id: auth.map(|a| &*a.user_id),
            is_admin: false,
            roles: &[],
            data: row,
        };
        list.iter().any(|rule| rule.allows(&ctx))
    }
}
