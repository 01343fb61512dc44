//! Who may use a client or an app: listed by user (id or username) or by group. Empty lists
//! admit every signed-in user. The same rule for OIDC clients (`allowed_users`,
//! `allowed_groups` in their metadata) and gateway apps.

/// Whether `user` passes the lists.
pub fn admits(
    allowed_users: &[String],
    allowed_groups: &[String],
    user_id: &str,
    username: &str,
    groups: &[String],
) -> bool {
    if allowed_users.is_empty() && allowed_groups.is_empty() {
        return true;
    }
    allowed_users
        .iter()
        .any(|u| u == user_id || u.eq_ignore_ascii_case(username))
        || allowed_groups.iter().any(|g| groups.contains(g))
}

/// An administrator's list is bounded: at most 256 names of 1 to 254 bytes.
pub fn list_ok(list: &[String]) -> bool {
    list.len() <= 256 && list.iter().all(|v| !v.is_empty() && v.len() <= 254)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_lists_admit_everyone_and_listed_users_or_groups_admit_only_them() {
        assert!(admits(&[], &[], "usr_1", "ann", &[]));
        let users = v(&["usr_1", "Bob"]);
        assert!(admits(&users, &[], "usr_1", "ann", &[]));
        assert!(
            admits(&users, &[], "usr_2", "bob", &[]),
            "usernames are case-insensitive"
        );
        assert!(!admits(&users, &[], "usr_3", "carol", &[]));
        let groups = v(&["staff"]);
        assert!(admits(&[], &groups, "usr_3", "carol", &v(&["staff", "x"])));
        assert!(
            !admits(&[], &groups, "usr_3", "carol", &v(&["Staff"])),
            "group names are exact"
        );
        assert!(admits(&users, &groups, "usr_3", "carol", &v(&["staff"])));
    }

    #[test]
    fn lists_are_bounded() {
        assert!(list_ok(&[]));
        assert!(list_ok(&vec!["x".repeat(254); 256]));
        assert!(!list_ok(&vec!["x".to_owned(); 257]));
        assert!(!list_ok(&["x".repeat(255)]));
        assert!(!list_ok(&[String::new()]));
    }
}
