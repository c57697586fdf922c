//! Random values: `randAlphaNum`, `randAlpha`, `randNumeric`, `randAscii`, `randBytes`, `uuidv4`, and the
//! random source `shuffle` and `randInt` use. Randomness comes from the OS (through `uuid`'s v4 source).

use super::args::{self, take};
use crate::value::FuncResult;
use crate::value::Value;

/// 64 random bits.
fn random_u64() -> u64 {
    let bits = uuid::Uuid::new_v4().as_u128();
    // Fold away the fixed version and variant bits, then mix.
    let mut z = (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniformly random number below `n` (`n` > 0).
pub(crate) fn below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let r = random_u64();
        if r < zone {
            return r % n;
        }
    }
}

fn random_from(name: &str, args: Vec<Value>, alphabet: &[u8]) -> FuncResult {
    let [n] = take(name, args)?;
    let n = args::int(&n)?.max(0) as usize;
    let s: String = (0..n)
        .map(|_| alphabet[below(alphabet.len() as u64) as usize] as char)
        .collect();
    Ok(Value::from(s))
}

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const DIGITS: &[u8] = b"0123456789";

/// `randAlphaNum N`.
pub(crate) fn rand_alpha_num(args: Vec<Value>) -> FuncResult {
    random_from("randAlphaNum", args, ALNUM)
}

/// `randAlpha N`.
pub(crate) fn rand_alpha(args: Vec<Value>) -> FuncResult {
    random_from("randAlpha", args, ALPHA)
}

/// `randNumeric N`.
pub(crate) fn rand_numeric(args: Vec<Value>) -> FuncResult {
    random_from("randNumeric", args, DIGITS)
}

/// `randAscii N`: printable ASCII (space to `~`).
pub(crate) fn rand_ascii(args: Vec<Value>) -> FuncResult {
    let printable: Vec<u8> = (32u8..=126).collect();
    random_from("randAscii", args, &printable)
}

/// Random bytes.
pub(crate) fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| random_u64() as u8).collect()
}

/// `randBytes N`: N random bytes, base64-encoded.
pub(crate) fn rand_bytes(args: Vec<Value>) -> FuncResult {
    let [n] = take("randBytes", args)?;
    let n = args::int(&n)?.max(0) as usize;
    Ok(Value::from(super::encoding::base64_encode(&bytes(n))))
}

/// `uuidv4`.
pub(crate) fn uuidv4(args: Vec<Value>) -> FuncResult {
    let [] = take("uuidv4", args)?;
    Ok(Value::from(uuid::Uuid::new_v4().to_string()))
}
