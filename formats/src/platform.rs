//! Choosing an image for a platform: the one rule, used by pull, base images of a build, embedding and
//! mirroring.
//!
//! Platforms are compared after normalising them as containers/image (through containerd's `platforms`
//! package) does: names lower-cased, `arm64` without a variant is `arm64/v8`, `arm` without one is `arm/v7`,
//! and a bare variant number `8` is `v8`. A wanted platform with a variant matches only that variant; one
//! without a variant prefers its architecture's default variant and then takes any. An empty wanted `os`
//! matches every operating system (`--arch` alone), an empty `architecture` every architecture.

use crate::manifest::{Descriptor, ImageConfig, ImageIndex, Platform};

impl ImageConfig {
    /// The platform this image config names (`os`, `architecture`, `variant`, `os.version`).
    pub fn platform(&self) -> Platform {
        let mut p = Platform::new(self.os.clone(), self.architecture.clone());
        p.variant = self.variant.clone();
        p.os_version = self.os_version.clone();
        p
    }
}

impl Platform {
    /// The variant after normalisation: `v8` for `arm64` and `v7` for `arm` when none is given, `vN` for a
    /// bare `N`; `None` for architectures without variants.
    pub fn normalized_variant(&self) -> Option<String> {
        let arch = self.architecture.to_ascii_lowercase();
        match self.variant.as_deref().map(str::to_ascii_lowercase) {
            Some(v) if !v.is_empty() => Some(match v.parse::<u32>() {
                Ok(n) => format!("v{n}"),
                Err(_) => v,
            }),
            _ => match arch.as_str() {
                "arm64" => Some("v8".to_string()),
                "arm" => Some("v7".to_string()),
                _ => None,
            },
        }
    }

    /// True when `candidate` (an image's platform) satisfies `self` (the platform wanted): same os and
    /// architecture (an empty one in `self` matches any), and the same normalised variant when `self` names
    /// one.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let same = |a: &str, b: &str| a.is_empty() || a.eq_ignore_ascii_case(b);
        same(&self.os, &candidate.os)
            && same(&self.architecture, &candidate.architecture)
            && (self.variant.is_none()
                || self.normalized_variant() == candidate.normalized_variant())
    }

    /// The entry of `index` for `wanted`: the first whose platform matches with the same normalised variant,
    /// else (when `wanted` names no variant) the first that matches at all. Entries without a platform are
    /// never chosen.
    pub fn select<'a>(index: &'a ImageIndex, wanted: &Platform) -> Option<&'a Descriptor> {
        let platforms = || {
            index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| (d, p)))
        };
        let exact = wanted.normalized_variant();
        platforms()
            .find(|(_, p)| wanted.matches(p) && p.normalized_variant() == exact)
            .or_else(|| platforms().find(|(_, p)| wanted.matches(p)))
            .map(|(d, _)| d)
    }

    /// The image manifest of `index` to run or save on this host: [`Platform::select`] for
    /// [`Platform::host`], else the index's only image manifest whatever its platform says.
    pub fn select_host(index: &ImageIndex) -> Option<&Descriptor> {
        let is_manifest = |d: &&Descriptor| crate::media_type::is_manifest(&d.media_type);
        Platform::select(index, &Platform::host())
            .filter(is_manifest)
            .or_else(|| {
                let mut manifests = index.manifests.iter().filter(is_manifest);
                match (manifests.next(), manifests.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::digest::Digest;
    use crate::manifest::{Descriptor, ImageIndex, Platform};

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn index(platforms: &[&str]) -> ImageIndex {
        let manifests = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let hex = format!("{i:064x}");
                let mut d = Descriptor::new(
                    crate::media_type::OCI_MANIFEST,
                    Digest::parse(&format!("sha256:{hex}")).unwrap(),
                    1,
                );
                d.platform = Some(platform(p));
                d
            })
            .collect();
        serde_json::from_value::<ImageIndex>(
            serde_json::json!({"schemaVersion": 2, "manifests": []}),
        )
        .map(|mut i| {
            i.manifests = manifests;
            i
        })
        .unwrap()
    }

    fn chosen(platforms: &[&str], wanted: &str) -> Option<String> {
        let i = index(platforms);
        Platform::select(&i, &platform(wanted)).map(|d| d.platform.as_ref().unwrap().to_string())
    }

    #[test]
    fn arm64_defaults_to_v8_and_arm_to_v7() {
        assert_eq!(
            chosen(&["linux/amd64", "linux/arm64"], "linux/arm64/v8").as_deref(),
            Some("linux/arm64")
        );
        assert_eq!(
            chosen(&["linux/arm/v6", "linux/arm/v7"], "linux/arm").as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(
            chosen(&["linux/arm/v6", "linux/arm"], "linux/arm/v7").as_deref(),
            Some("linux/arm")
        );
        assert_eq!(
            chosen(&["linux/arm/8"], "linux/arm/v8").as_deref(),
            Some("linux/arm/8")
        );
    }

    /// Where the old copies disagreed: two ignored the variant and took the first `arm` entry.
    #[test]
    fn a_wanted_variant_is_never_ignored() {
        assert_eq!(
            chosen(&["linux/arm/v6", "linux/amd64"], "linux/arm/v7"),
            None
        );
        assert_eq!(
            chosen(&["linux/arm/v6", "linux/arm/v7"], "linux/arm/v7").as_deref(),
            Some("linux/arm/v7")
        );
    }

    #[test]
    fn without_a_variant_any_entry_of_the_architecture_is_taken_last() {
        assert_eq!(
            chosen(&["linux/arm/v6"], "linux/arm").as_deref(),
            Some("linux/arm/v6")
        );
        assert_eq!(
            chosen(&["windows/amd64", "linux/amd64"], "linux/amd64").as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(chosen(&["linux/amd64"], "linux/arm64"), None);
    }

    #[test]
    fn an_empty_os_matches_any_and_entries_without_platform_are_skipped() {
        let mut any_os = Platform::new("", "amd64");
        any_os.variant = None;
        let mut i = index(&["windows/amd64"]);
        assert!(Platform::select(&i, &any_os).is_some());
        i.manifests[0].platform = None;
        assert!(Platform::select(&i, &any_os).is_none());
        assert!(any_os.matches(&platform("linux/amd64")));
    }
}
