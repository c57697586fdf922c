//! What the cache holds and how recently each image was used, for the size bound: images (a repository's
//! manifest and the digests it references), the stored digests with their sizes and the repositories that link
//! them, and the choice of what to evict (least recently used whole images, never one in use, never a digest
//! another kept image references).

use std::collections::{BTreeSet, HashMap, HashSet};

use formats::digest::Digest;

/// An image of the cache: a manifest in a repository.
pub(crate) type ImageKey = (String, Digest);

/// One cached image.
#[derive(Debug, Clone)]
struct Image {
    /// The manifest's digest, then every digest it references (config and layers, or an index's children).
    digests: Vec<Digest>,
    /// When it was last used, on the index's own clock.
    last_used: u64,
}

/// A digest the cache stored.
#[derive(Debug, Clone, Default)]
struct Stored {
    size: u64,
    /// Repositories where it is a layer link.
    layer_in: BTreeSet<String>,
    /// Repositories where it is a manifest revision.
    revision_in: BTreeSet<String>,
    /// A local (not proxied) repository linked it too: eviction unlinks it from the cache's repositories but
    /// keeps its data.
    local: bool,
}

/// One digest to take out of the store: unlinked everywhere the cache linked it, then its data removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removal {
    /// The digest.
    pub digest: Digest,
    /// Repositories whose layer link to it goes.
    pub layer_in: Vec<String>,
    /// Repositories whose manifest revision (and its tags) goes.
    pub revision_in: Vec<String>,
    /// A local repository uses it too: keep its data.
    pub keep_data: bool,
}

/// The cache's bookkeeping. Not thread-safe by itself: the proxy holds it under a mutex.
#[derive(Debug, Default)]
pub(crate) struct CacheIndex {
    images: HashMap<ImageKey, Image>,
    /// Images referencing each digest (their own manifest included).
    users: HashMap<Digest, HashSet<ImageKey>>,
    stored: HashMap<Digest, Stored>,
    clock: u64,
}

impl CacheIndex {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Records image `manifest` of `repo` (`size` bytes, stored as a revision there) referencing `refs`, as
    /// just used. `fresh` false records it as the least recently used (what an earlier run left).
    pub(crate) fn add_image(
        &mut self,
        repo: &str,
        manifest: &Digest,
        size: u64,
        refs: Vec<Digest>,
        fresh: bool,
    ) {
        let key = (repo.to_string(), manifest.clone());
        let last_used = if fresh { self.tick() } else { 0 };
        let mut digests = vec![manifest.clone()];
        digests.extend(refs.into_iter().filter(|d| d != manifest));
        for d in &digests {
            self.users.entry(d.clone()).or_default().insert(key.clone());
        }
        self.images.insert(key, Image { digests, last_used });
        let s = self.stored.entry(manifest.clone()).or_default();
        s.size = size;
        s.revision_in.insert(repo.to_string());
    }

    /// Records that `digest` (`size` bytes) is stored and linked as a layer into `repo`.
    pub(crate) fn add_blob(&mut self, repo: &str, digest: &Digest, size: u64) {
        let s = self.stored.entry(digest.clone()).or_default();
        s.size = size;
        s.layer_in.insert(repo.to_string());
    }

    /// Records that `digest` is now also linked into `repo`, when the cache holds it (else nothing: a blob the
    /// cache did not fetch is not its to evict).
    pub(crate) fn link_if_cached(&mut self, repo: &str, digest: &Digest) {
        if let Some(s) = self.stored.get_mut(digest) {
            s.layer_in.insert(repo.to_string());
        }
    }

    /// Records that a local (not proxied) repository linked `digest`, when the cache holds it: its data then
    /// outlives its eviction.
    pub(crate) fn mark_local(&mut self, digest: &Digest) {
        if let Some(s) = self.stored.get_mut(digest) {
            s.local = true;
        }
    }

    /// True when the index knows image `manifest` of `repo`.
    #[cfg(test)]
    pub(crate) fn has_image(&self, repo: &str, manifest: &Digest) -> bool {
        self.images
            .contains_key(&(repo.to_string(), manifest.clone()))
    }

    /// Marks image `manifest` of `repo` as just used.
    pub(crate) fn touch_image(&mut self, repo: &str, manifest: &Digest) {
        let now = self.tick();
        if let Some(i) = self.images.get_mut(&(repo.to_string(), manifest.clone())) {
            i.last_used = now;
        }
    }

    /// Bytes the cache holds (each stored digest once).
    pub(crate) fn total(&self) -> u64 {
        self.stored.values().map(|s| s.size).sum()
    }

    /// Takes images out of the index, least recently used first, until the cache holds at most `max` bytes;
    /// returns what to remove from the store. Digests no image references go first. An image with a digest
    /// `in_use` says is being served stays, and so does the most recently used image (the one a pull is
    /// fetching now); a digest another kept image references stays.
    pub(crate) fn evict_to(&mut self, max: u64, in_use: &dyn Fn(&Digest) -> bool) -> Vec<Removal> {
        let mut removals = Vec::new();
        let mut total = self.total();
        if total <= max {
            return removals;
        }
        let orphans: Vec<Digest> = self
            .stored
            .keys()
            .filter(|d| self.users.get(*d).is_none_or(HashSet::is_empty) && !in_use(d))
            .cloned()
            .collect();
        for d in orphans {
            if total <= max {
                return removals;
            }
            total -= self.stored.get(&d).map_or(0, |s| s.size);
            removals.push(self.take(&d));
        }
        let newest = self
            .images
            .iter()
            .max_by_key(|(k, i)| (i.last_used, (*k).clone()))
            .map(|(k, _)| k.clone());
        let mut candidates: Vec<(u64, ImageKey)> = self
            .images
            .iter()
            .filter(|(k, i)| Some(*k) != newest.as_ref() && !i.digests.iter().any(in_use))
            .map(|(k, i)| (i.last_used, k.clone()))
            .collect();
        candidates.sort();
        for (_, key) in candidates {
            if total <= max {
                break;
            }
            let Some(image) = self.images.remove(&key) else {
                continue;
            };
            for d in &image.digests {
                let now_unused = self.users.get_mut(d).is_some_and(|u| {
                    u.remove(&key);
                    u.is_empty()
                });
                if now_unused && self.stored.contains_key(d) {
                    total -= self.stored.get(d).map_or(0, |s| s.size);
                    removals.push(self.take(d));
                }
            }
        }
        removals
    }

    fn take(&mut self, digest: &Digest) -> Removal {
        self.users.remove(digest);
        let s = self.stored.remove(digest).unwrap_or_default();
        Removal {
            digest: digest.clone(),
            layer_in: s.layer_in.into_iter().collect(),
            revision_in: s.revision_in.into_iter().collect(),
            keep_data: s.local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    /// Image `m` in `repo` with blobs `refs` of 100 bytes each, manifest 1 byte.
    fn image(index: &mut CacheIndex, repo: &str, m: u8, refs: &[u8]) {
        index.add_image(repo, &d(m), 1, refs.iter().map(|r| d(*r)).collect(), true);
        for r in refs {
            index.add_blob(repo, &d(*r), 100);
        }
    }

    fn removed(r: &[Removal]) -> Vec<Digest> {
        let mut v: Vec<Digest> = r.iter().map(|r| r.digest.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_least_recently_used_image_goes_first_keeping_shared_blobs() {
        let mut index = CacheIndex::default();
        image(&mut index, "a", 1, &[10, 11]);
        image(&mut index, "b", 2, &[10, 12]);
        image(&mut index, "c", 3, &[13]);
        assert_eq!(index.total(), 3 + 400);
        index.touch_image("a", &d(1));
        // b is now the oldest: it goes, and its blob 10 stays for a.
        let r = index.evict_to(302, &|_| false);
        let mut want = vec![d(2), d(12)];
        want.sort();
        assert_eq!(removed(&r), want);
        let manifest = r.iter().find(|r| r.digest == d(2)).unwrap();
        assert_eq!(manifest.revision_in, vec!["b".to_string()]);
        assert_eq!(index.total(), 2 + 300);
        assert!(!index.has_image("b", &d(2)));
    }

    #[test]
    fn images_in_use_and_the_newest_are_never_evicted() {
        let mut index = CacheIndex::default();
        image(&mut index, "a", 1, &[10]);
        image(&mut index, "b", 2, &[11]);
        image(&mut index, "c", 3, &[12]);
        // a is in use, c is the newest: only b may go, and the bound cannot be met.
        let r = index.evict_to(0, &|x| *x == d(10));
        let mut want = vec![d(2), d(11)];
        want.sort();
        assert_eq!(removed(&r), want);
        assert!(index.has_image("a", &d(1)) && index.has_image("c", &d(3)));
    }

    #[test]
    fn data_a_local_repository_linked_is_unlinked_but_kept() {
        let mut index = CacheIndex::default();
        image(&mut index, "a", 1, &[10]);
        image(&mut index, "b", 2, &[11]);
        index.mark_local(&d(10));
        // Not held by the cache: nothing to mark.
        index.mark_local(&d(99));
        let r = index.evict_to(101, &|_| false);
        let layer = r.iter().find(|r| r.digest == d(10)).unwrap();
        assert!(layer.keep_data);
        assert_eq!(layer.layer_in, vec!["a".to_string()]);
        assert!(r.iter().filter(|r| r.digest != d(10)).all(|r| !r.keep_data));
        assert_eq!(index.total(), 101);
    }

    #[test]
    fn blobs_no_image_references_go_before_images() {
        let mut index = CacheIndex::default();
        image(&mut index, "a", 1, &[10]);
        index.add_blob("a", &d(20), 100);
        image(&mut index, "b", 2, &[11]);
        let r = index.evict_to(202, &|_| false);
        assert_eq!(removed(&r), vec![d(20)]);
        assert_eq!(r[0].layer_in, vec!["a".to_string()]);
        assert!(index.evict_to(1000, &|_| false).is_empty());
    }
}
