//! Deterministic edits of the account databases: /etc/passwd, /etc/group,
//! /etc/shadow and /etc/gshadow.
//!
//! Edits merge with what the base has: an identical entry is kept, an entry
//! whose name or id collides with a different one is an error, new entries
//! are appended, and no existing line moves. Pure functions on text.

/// The account files one user or group edit rewrites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Databases {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
}

/// A user to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// A group to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Adds `user`, creating its primary group (named after the user) when no
/// group has its gid. `days` is the shadow last-change field: days since the
/// epoch of SOURCE_DATE_EPOCH.
pub fn add_user(db: &Databases, user: &User, days: u64) -> Result<Databases, String> {
    let mut out = db.clone();
    let line = format!(
        "{}:x:{}:{}:{}:{}:{}",
        user.name, user.uid, user.gid, user.gecos, user.home, user.shell
    );
    let mut exists = false;
    for fields in records(&db.passwd) {
        let (name, uid) = (fields[0], fields.get(2).copied().unwrap_or(""));
        if name == user.name || uid == user.uid.to_string() {
            if fields.join(":") == line {
                exists = true;
                continue;
            }
            return Err(format!(
                "user {} (uid {}) conflicts with the existing /etc/passwd entry {:?}",
                user.name,
                user.uid,
                fields.join(":")
            ));
        }
    }
    if !exists {
        out.passwd = append(&db.passwd, &line);
    }
    if !records(&db.shadow).any(|f| f[0] == user.name) {
        out.shadow = append(&db.shadow, &format!("{}:*:{days}:0:99999:7:::", user.name));
    }
    let has_gid = records(&db.group).any(|f| f.get(2) == Some(&user.gid.to_string().as_str()));
    if !has_gid {
        out = add_group(
            &out,
            &Group {
                name: user.name.clone(),
                gid: user.gid,
                members: Vec::new(),
            },
        )?;
    }
    Ok(out)
}

/// Adds `group`. An existing group of the same name and gid is kept, with
/// any new members appended.
pub fn add_group(db: &Databases, group: &Group) -> Result<Databases, String> {
    let mut out = db.clone();
    let mut lines: Vec<String> = db.group.lines().map(str::to_string).collect();
    let mut found = false;
    for line in lines.iter_mut() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 || fields[0].starts_with('#') {
            continue;
        }
        let (name, gid) = (fields[0], fields[2]);
        if name != group.name && gid != group.gid.to_string() {
            continue;
        }
        if name != group.name || gid != group.gid.to_string() {
            return Err(format!(
                "group {} (gid {}) conflicts with the existing /etc/group entry {line:?}",
                group.name, group.gid
            ));
        }
        found = true;
        let mut members: Vec<String> = fields
            .get(3)
            .map(|m| {
                m.split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for m in &group.members {
            if !members.contains(m) {
                members.push(m.clone());
            }
        }
        *line = format!("{}:{}:{}:{}", name, fields[1], gid, members.join(","));
    }
    if found {
        out.group = lines.iter().map(|l| format!("{l}\n")).collect();
    } else {
        out.group = append(
            &db.group,
            &format!("{}:x:{}:{}", group.name, group.gid, group.members.join(",")),
        );
    }
    if !records(&db.gshadow).any(|f| f[0] == group.name) {
        out.gshadow = append(
            &db.gshadow,
            &format!("{}:!::{}", group.name, group.members.join(",")),
        );
    }
    Ok(out)
}

/// Non-comment, non-empty lines split on `:`.
/// Resolves an image config's `user` (`""`, `NAME`, `UID`, `NAME:GROUP`,
/// `UID:GID`, mixed) to numeric ids through the image's own /etc/passwd and
/// /etc/group, as container runtimes do: an empty user is root, a named
/// user's group is its primary one, and a numeric uid the image does not
/// list runs with gid 0.
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = |find: &dyn Fn(&[&str]) -> bool| {
        records(passwd).find(|f| f.len() >= 4 && find(f)).map(|f| {
            (
                f[2].parse::<u32>()
                    .map_err(|_| format!("/etc/passwd has a bad uid in {:?}", f.join(":"))),
                f[3].parse::<u32>()
                    .map_err(|_| format!("/etc/passwd has a bad gid in {:?}", f.join(":"))),
            )
        })
    };
    let (uid, primary_gid) = if user_part.is_empty() {
        (0, 0)
    } else if let Ok(uid) = user_part.parse::<u32>() {
        let gid = match entry(&|f| f[2] == user_part) {
            Some((_, gid)) => gid?,
            None => 0,
        };
        (uid, gid)
    } else {
        match entry(&|f| f[0] == user_part) {
            Some((uid, gid)) => (uid?, gid?),
            None => return Err(format!("no user {user_part:?} in the image's /etc/passwd")),
        }
    };
    let gid = match group_part {
        None | Some("") => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => records(group)
                .find(|f| f.len() >= 3 && f[0] == g)
                .ok_or_else(|| format!("no group {g:?} in the image's /etc/group"))?[2]
                .parse()
                .map_err(|_| format!("/etc/group has a bad gid for {g:?}"))?,
        },
    };
    Ok((uid, gid))
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn append(text: &str, line: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32) -> User {
        User {
            name: name.into(),
            uid,
            gid: uid,
            gecos: String::new(),
            home: format!("/home/{name}"),
            shell: "/sbin/nologin".into(),
        }
    }

    #[test]
    fn adds_user_shadow_and_private_group_in_stable_order() {
        let base = Databases {
            passwd: "root:x:0:0:root:/root:/sbin/nologin\n".into(),
            group: "root:x:0:\n".into(),
            shadow: "root:*:0:0:99999:7:::\n".into(),
            gshadow: "root:!::\n".into(),
        };
        let db = add_user(&base, &user("app", 10001), 19000).unwrap();
        assert_eq!(
            db.passwd,
            "root:x:0:0:root:/root:/sbin/nologin\napp:x:10001:10001::/home/app:/sbin/nologin\n"
        );
        assert_eq!(db.group, "root:x:0:\napp:x:10001:\n");
        assert_eq!(
            db.shadow,
            "root:*:0:0:99999:7:::\napp:*:19000:0:99999:7:::\n"
        );
        assert_eq!(db.gshadow, "root:!::\napp:!::\n");
        // Adding the same user again changes nothing.
        assert_eq!(add_user(&db, &user("app", 10001), 19000).unwrap(), db);
    }

    #[test]
    fn conflicting_ids_are_errors() {
        let db = add_user(&Databases::default(), &user("app", 10001), 0).unwrap();
        let err = add_user(&db, &user("other", 10001), 0).unwrap_err();
        assert!(err.contains("conflicts"), "{err}");
        assert!(add_user(&db, &user("app", 10002), 0).is_err());
        let err = add_group(
            &db,
            &Group {
                name: "x".into(),
                gid: 10001,
                members: vec![],
            },
        )
        .unwrap_err();
        assert!(err.contains("conflicts"), "{err}");
    }

    #[test]
    fn group_members_merge() {
        let db = add_group(
            &Databases::default(),
            &Group {
                name: "g".into(),
                gid: 5,
                members: vec!["a".into()],
            },
        )
        .unwrap();
        let db = add_group(
            &db,
            &Group {
                name: "g".into(),
                gid: 5,
                members: vec!["b".into(), "a".into()],
            },
        )
        .unwrap();
        assert_eq!(db.group, "g:x:5:a,b\n");
    }

    #[test]
    fn resolves_users_as_runtimes_do() {
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\napp:x:10001:10002::/var/lib/app:/sbin/nologin\n";
        let group = "root:x:0:\napp:x:10002:\nweb:x:33:\n";
        for (user, want) in [
            ("", Ok((0, 0))),
            ("app", Ok((10001, 10002))),
            ("10001", Ok((10001, 10002))),
            ("4242", Ok((4242, 0))),
            ("app:web", Ok((10001, 33))),
            ("app:7", Ok((10001, 7))),
            ("10001:10001", Ok((10001, 10001))),
            ("nobody", Err("no user \"nobody\"")),
            ("app:nogroup", Err("no group \"nogroup\"")),
        ] {
            let got = resolve_user(user, passwd, group);
            match want {
                Ok(ids) => assert_eq!(got, Ok(ids), "{user}"),
                Err(m) => assert!(got.unwrap_err().contains(m), "{user}"),
            }
        }
    }
}
