//! Which user a container runs as, the way containerd resolves it for Kubernetes:
//!
//! ```text
//! runAsUser        → uid; gid from that uid's /etc/passwd line, else 0
//! else image User  "name" | "uid" | "name:group" | "uid:gid" ... names looked up in
//!                  the container's own /etc/passwd and /etc/group
//! else             → 0:0
//! runAsGroup       → replaces the gid
//! additional gids  = groups of /etc/group listing the user by name, then
//!                    supplementalGroups
//! ```
//!
//! The files are read from the container's root filesystem (the mounted overlay),
//! so a later layer's /etc/passwd wins as it does inside the container.

use std::path::Path;

use super::super::SecuritySpec;
use super::config::User;

/// The message kubelet gives (reason CreateContainerConfigError).
pub const RUN_AS_NON_ROOT: &str = "container has runAsNonRoot and image will run as root";

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The user of a container whose root filesystem is at `rootfs`; the error says
/// what could not be resolved (or that runAsNonRoot refuses root).
pub fn resolve(security: &SecuritySpec, rootfs: &Path) -> Result<User, String> {
    let passwd = read_etc(rootfs, "passwd").map_or_else(Vec::new, |text| parse_passwd(&text));
    let groups = read_etc(rootfs, "group").map_or_else(Vec::new, |text| parse_group(&text));
    resolve_with(security, &passwd, &groups)
}

fn resolve_with(security: &SecuritySpec, passwd: &[PasswdEntry], groups: &[GroupEntry]) -> Result<User, String> {
    let by_uid = |uid: u32| passwd.iter().find(|e| e.uid == uid);
    let (uid, mut gid, user_name) = match (security.run_as_user, security.image_user.as_deref()) {
        (Some(uid), _) => (
            uid,
            by_uid(uid).map_or(0, |e| e.gid),
            by_uid(uid).map(|e| e.name.clone()),
        ),
        (None, Some(image_user)) if !image_user.is_empty() => {
            let (user, group) = match image_user.split_once(':') {
                Some((user, group)) => (user, Some(group)),
                None => (image_user, None),
            };
            let entry = match user.parse::<u32>() {
                Ok(uid) => by_uid(uid).cloned().unwrap_or(PasswdEntry {
                    name: String::new(),
                    uid,
                    gid: 0,
                }),
                Err(_) => passwd
                    .iter()
                    .find(|e| e.name == user)
                    .cloned()
                    .ok_or_else(|| format!("no users found for the image's user {user:?} in /etc/passwd"))?,
            };
            let gid = match group {
                None => entry.gid,
                Some(group) => match group.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => groups
                        .iter()
                        .find(|g| g.name == group)
                        .map(|g| g.gid)
                        .ok_or_else(|| format!("no groups found for the image's group {group:?} in /etc/group"))?,
                },
            };
            let name = (!entry.name.is_empty()).then_some(entry.name);
            (entry.uid, gid, name)
        }
        _ => (0, 0, by_uid(0).map(|e| e.name.clone())),
    };
    if security.run_as_non_root && uid == 0 {
        return Err(RUN_AS_NON_ROOT.to_owned());
    }
    if let Some(group) = security.run_as_group {
        gid = group;
    }
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = &user_name {
        for group in groups.iter().filter(|g| g.members.contains(name)) {
            if group.gid != gid && !additional_gids.contains(&group.gid) {
                additional_gids.push(group.gid);
            }
        }
    }
    for &group in &security.supplemental_groups {
        if !additional_gids.contains(&group) {
            additional_gids.push(group);
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// `rootfs/etc/NAME` when it is a regular file: a symlink there would be followed
/// on the host, not in the container.
fn read_etc(rootfs: &Path, name: &str) -> Option<String> {
    let path = rootfs.join("etc").join(name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// `name:password:uid:gid:gecos:home:shell`; malformed lines are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: (*fields.first()?).to_owned(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// `name:password:gid:member,member`; malformed lines are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: (*fields.first()?).to_owned(),
                gid: fields.get(2)?.parse().ok()?,
                members: fields
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\nwebgrp:x:1001:\nvideo:x:44:web,other\naudio:x:29:other\n";

    fn resolve_text(security: &SecuritySpec) -> Result<User, String> {
        resolve_with(security, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn nothing_given_is_root() {
        assert_eq!(resolve_text(&SecuritySpec::default()), Ok(user(0, 0, &[])));
    }

    #[test]
    fn an_image_user_name_resolves_with_its_groups() {
        let security = SecuritySpec {
            image_user: Some("web".into()),
            supplemental_groups: vec![5000],
            ..SecuritySpec::default()
        };
        assert_eq!(resolve_text(&security), Ok(user(1000, 1001, &[44, 5000])));
    }

    #[test]
    fn image_user_forms() {
        let with = |image_user: &str| {
            resolve_text(&SecuritySpec {
                image_user: Some(image_user.into()),
                ..SecuritySpec::default()
            })
        };
        assert_eq!(with("1000"), Ok(user(1000, 1001, &[44])));
        assert_eq!(with("4242"), Ok(user(4242, 0, &[])));
        assert_eq!(with("1000:29"), Ok(user(1000, 29, &[44])));
        assert_eq!(with("web:audio"), Ok(user(1000, 29, &[44])));
        assert!(with("nobody").unwrap_err().contains("\"nobody\""));
        assert!(with("web:nogroup").unwrap_err().contains("\"nogroup\""));
    }

    #[test]
    fn run_as_user_and_group_win_over_the_image() {
        let security = SecuritySpec {
            run_as_user: Some(1000),
            run_as_group: Some(7),
            image_user: Some("root".into()),
            ..SecuritySpec::default()
        };
        assert_eq!(resolve_text(&security), Ok(user(1000, 7, &[44])));
    }

    #[test]
    fn run_as_non_root_refuses_uid_zero_however_named() {
        for image_user in [None, Some("root"), Some("0:1001")] {
            let security = SecuritySpec {
                image_user: image_user.map(str::to_owned),
                run_as_non_root: true,
                ..SecuritySpec::default()
            };
            assert_eq!(
                resolve_text(&security),
                Err(RUN_AS_NON_ROOT.to_owned()),
                "{image_user:?}"
            );
        }
        let security = SecuritySpec {
            image_user: Some("web".into()),
            run_as_non_root: true,
            ..SecuritySpec::default()
        };
        assert_eq!(resolve_text(&security).map(|u| u.uid), Ok(1000));
    }
}
