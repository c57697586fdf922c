//! Content digests (`sha256:<hex>`, `sha512:<hex>`), and readers/writers that hash bytes as they stream.
//!
//! A [`Digest`] is always valid once constructed: the algorithm is known and the hex part has the right length
//! and is lower-case. Verification errors name both the expected and the actual digest.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState as _;
use sha2::{Digest as _, Sha256, Sha512};

/// A hash algorithm allowed in an OCI digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512, allowed by the OCI specs.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written in a digest (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lower-case hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Box::default()),
            Algorithm::Sha512 => Hasher::Sha512(Box::default()),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

/// Why a digest string was rejected, or why content did not match its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separates algorithm and hex.
    #[error("invalid digest `{0}`: expected `algorithm:hex`")]
    Malformed(String),
    /// The algorithm is not sha256 or sha512.
    #[error("unsupported digest algorithm `{0}` (supported: sha256, sha512)")]
    UnsupportedAlgorithm(String),
    /// The hex part has the wrong length or characters.
    #[error("invalid digest `{digest}`: {reason}")]
    InvalidHex {
        /// The rejected digest text.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content hashed to a different digest than expected.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the content was supposed to have.
        expected: Digest,
        /// The digest the content actually has.
        actual: Digest,
    },
    /// Content had a different size than expected.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest of the content in question.
        digest: Digest,
        /// The expected size in bytes.
        expected: u64,
        /// The actual size in bytes.
        actual: u64,
    },
    /// A saved hash state could not be restored.
    #[error("saved hash state is damaged or from another version ({0}); restart the upload")]
    State(String),
}

/// A validated content digest such as `sha256:e3b0c442...`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        let algorithm: Algorithm = alg.parse()?;
        Self::from_parts(algorithm, hex)
    }

    /// Builds a digest from an algorithm and its hex encoding, validating the hex.
    pub fn from_parts(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        let invalid = |reason: String| DigestError::InvalidHex {
            digest: format!("{algorithm}:{hex}"),
            reason,
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(format!(
                "{algorithm} needs {} hex characters, found {}",
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if let Some(c) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(invalid(format!("`{c}` is not a lower-case hex digit")));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with the given algorithm.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks that `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), DigestError> {
        let actual = Self::of(self.algorithm, bytes);
        self.expect(&actual)
    }

    /// Returns a mismatch error naming both digests unless `actual` equals `self`.
    pub fn expect(&self, actual: &Digest) -> Result<(), DigestError> {
        if self == actual {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: self.clone(),
                actual: actual.clone(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(Box<Sha256>),
    /// SHA-512 state.
    Sha512(Box<Sha512>),
}

impl Hasher {
    /// Feeds bytes into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The hasher's internal state as bytes (algorithm name, `:`, then the state), so a hash can be continued
    /// by another process or another registry replica: see [`Hasher::restore_state`].
    pub fn save_state(&self) -> Vec<u8> {
        let mut out = format!("{}:", self.algorithm()).into_bytes();
        match self {
            Hasher::Sha256(h) => out.extend_from_slice(&h.serialize()),
            Hasher::Sha512(h) => out.extend_from_slice(&h.serialize()),
        }
        out
    }

    /// Restores a hasher from [`Hasher::save_state`] bytes; [`DigestError::State`] when they are not a state
    /// this version wrote.
    pub fn restore_state(state: &[u8]) -> Result<Hasher, DigestError> {
        let bad = || DigestError::State(format!("{} bytes", state.len()));
        let colon = state.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let algorithm: Algorithm = std::str::from_utf8(&state[..colon])
            .map_err(|_| bad())?
            .parse()
            .map_err(|_| bad())?;
        let raw = &state[colon + 1..];
        Ok(match algorithm {
            Algorithm::Sha256 => {
                let array = raw.try_into().map_err(|_| bad())?;
                Hasher::Sha256(Box::new(Sha256::deserialize(array).map_err(|_| bad())?))
            }
            Algorithm::Sha512 => {
                let array = raw.try_into().map_err(|_| bad())?;
                Hasher::Sha512(Box::new(Sha512::deserialize(array).map_err(|_| bad())?))
            }
        })
    }
}

/// A writer that hashes and counts every byte on its way to the inner writer.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`, hashing with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        DigestWriter {
            inner,
            hasher: algorithm.hasher(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (bytes written directly to it are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Hasher,
    len: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        DigestReader {
            inner,
            hasher: algorithm.hasher(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the inner reader, the digest of what was read, and the byte count.
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }

    /// Reads the rest of the stream and checks it against `expected` (and `size`, when given).
    pub fn verify_to_end(
        mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<u64, VerifyError> {
        io::copy(&mut self, &mut io::sink())?;
        let (_, actual, len) = self.finish();
        expected.expect(&actual)?;
        if let Some(size) = size.filter(|s| *s != len) {
            return Err(DigestError::SizeMismatch {
                digest: expected.clone(),
                expected: size,
                actual: len,
            }
            .into());
        }
        Ok(len)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Failure to verify a stream: either I/O or a digest/size mismatch.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the content failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The content did not match.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_saved_hash_state_continues_to_the_same_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = algorithm.hasher();
            first.update(&data[..3_333]);
            let mut resumed = Hasher::restore_state(&first.save_state()).unwrap();
            resumed.update(&data[3_333..]);
            assert_eq!(resumed.finish(), Digest::of(algorithm, &data));
        }
    }

    #[test]
    fn a_damaged_hash_state_is_refused() {
        let state = Algorithm::Sha256.hasher().save_state();
        assert!(matches!(
            Hasher::restore_state(&state[..state.len() - 1]),
            Err(DigestError::State(_))
        ));
        assert!(matches!(
            Hasher::restore_state(b"md5:abc"),
            Err(DigestError::State(_))
        ));
        assert!(matches!(
            Hasher::restore_state(b"no colon"),
            Err(DigestError::State(_))
        ));
    }

    #[test]
    fn empty_input_hashes_to_the_well_known_digest() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY_SHA256);
        assert!(
            Digest::of(Algorithm::Sha512, b"")
                .hex()
                .starts_with("cf83e135")
        );
    }

    #[test]
    fn malformed_digests_are_rejected_with_a_reason() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
        ] {
            let err = Digest::parse(bad).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn mismatch_names_expected_and_actual() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        let err = d.verify(b"x").unwrap_err().to_string();
        assert!(err.contains(EMPTY_SHA256), "{err}");
        assert!(err.contains(&Digest::sha256_of(b"x").to_string()), "{err}");
    }

    #[test]
    fn reader_and_writer_hash_what_streams_through() {
        let data = vec![7u8; 100_000];
        let mut w = DigestWriter::new(Vec::new(), Algorithm::Sha256);
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(d, Digest::sha256_of(&data));
        let r = DigestReader::new(&data[..], Algorithm::Sha256);
        assert_eq!(r.verify_to_end(&d, Some(100_000)).unwrap(), 100_000);
        let r = DigestReader::new(&data[..], Algorithm::Sha256);
        assert!(r.verify_to_end(&d, Some(5)).is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256), sha512 in any::<bool>()) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let d = Digest::of(alg, &bytes);
            prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d.clone());
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Digest::parse(&s);
        }
    }
}
