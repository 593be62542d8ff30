//! The one change the KBS reverse proxy makes to a request: the resource
//! path `/kbs/v0/resource/<repo>/pp-sid/privateKey` becomes
//! `/kbs/v0/resource/<repo>/pp-<SID>/privateKey`, so a PP can ask for "its"
//! key without knowing its own sandbox id.
//!
//! Contract: [`rewrite_resource_path`] is a pure function on the path (no
//! query); it returns `Some(new path)` only for exactly that shape (three
//! segments after `/kbs/v0/resource/`: `<repo>/pp-sid/privateKey`)
//! and `None` for every other path, which the proxy forwards unchanged.

use crate::sid::Sid;

/// The resource prefix of the KBS API.
const RESOURCE_PREFIX: &str = "/kbs/v0/resource/";
/// The placeholder resource type the PP asks for.
const PLACEHOLDER_TYPE: &str = "pp-sid";
/// The only resource tag that is rewritten.
const PRIVATE_KEY_TAG: &str = "privateKey";

/// Rewrites `/kbs/v0/resource/<repo>/pp-sid/privateKey` for `sid`; `None`
/// when `path` has any other shape.
pub fn rewrite_resource_path(path: &str, sid: &Sid) -> Option<String> {
    let rest = path.strip_prefix(RESOURCE_PREFIX)?;
    let mut segments = rest.split('/');
    let repo = segments.next()?;
    let resource_type = segments.next()?;
    let tag = segments.next()?;
    let shape_matches = !repo.is_empty()
        && resource_type == PLACEHOLDER_TYPE
        && tag == PRIVATE_KEY_TAG
        && segments.next().is_none();
    shape_matches.then(|| {
        format!(
            "{RESOURCE_PREFIX}{repo}/{}/{PRIVATE_KEY_TAG}",
            sid.pp_name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> Sid {
        Sid::parse("abc123").unwrap()
    }

    #[test]
    fn the_placeholder_private_key_path_gets_the_pp_sid() {
        assert_eq!(
            rewrite_resource_path("/kbs/v0/resource/default/pp-sid/privateKey", &sid()).as_deref(),
            Some("/kbs/v0/resource/default/pp-abc123/privateKey")
        );
    }

    #[test]
    fn the_repository_segment_is_kept() {
        assert_eq!(
            rewrite_resource_path("/kbs/v0/resource/other/pp-sid/privateKey", &sid()).as_deref(),
            Some("/kbs/v0/resource/other/pp-abc123/privateKey")
        );
    }

    #[test]
    fn every_other_path_is_left_alone() {
        for path in [
            "/kbs/v0/resource/default/sshclient/publicKey",
            "/kbs/v0/resource/default/pp-sid/publicKey",
            "/kbs/v0/resource/default/pp-sid/privateKey/extra",
            "/kbs/v0/resource//pp-sid/privateKey",
            "/kbs/v0/resource/default/pp-sidx/privateKey",
            "/kbs/v0/auth",
            "/kbs/v0/attest",
            "/other/kbs/v0/resource/default/pp-sid/privateKey",
            "",
        ] {
            assert_eq!(rewrite_resource_path(path, &sid()), None, "{path}");
        }
    }

    #[test]
    fn arbitrary_paths_never_panic_and_only_the_exact_shape_is_rewritten() {
        let pieces = [
            "/kbs/v0/resource/",
            "default",
            "/",
            "pp-sid",
            "/privateKey",
            "x",
            "",
            "%2F",
            "\u{e9}",
        ];
        let mut state: u32 = 0x1234_5678;
        let mut rewritten_count = 0;
        for _ in 0..5000 {
            let path: String = (0..5)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    pieces[state as usize % pieces.len()]
                })
                .collect();
            if let Some(rewritten) = rewrite_resource_path(&path, &sid()) {
                rewritten_count += 1;
                assert!(
                    path.ends_with("/pp-sid/privateKey")
                        && rewritten.ends_with("/pp-abc123/privateKey")
                );
            }
        }
        assert!(
            rewritten_count > 0,
            "the generator never produced the rewritten shape"
        );
    }
}
