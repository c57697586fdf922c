//! Hashes, passwords, AES and certificates: `sha1sum`, `sha256sum`, `sha512sum`, `adler32sum`, `bcrypt`,
//! `htpasswd`, `derivePassword`, `encryptAES`/`decryptAES` (AES-256-CBC as sprig does it), and the key and
//! certificate generators.
//!
//! Key and certificate generation: `genPrivateKey "ed25519"` makes a real key. RSA, ECDSA and DSA keys and
//! all generated certificates (`genCA`, `genSelfSignedCert`, `genSignedCert` and their `WithKey` forms)
//! are PLACEHOLDERS of the right shape: PEM blocks with the right labels around random DER-sized bytes.
//! They are not parseable keys or certificates; charts only embed them in Secrets, never in image
//! references, so a render's images are unaffected. `buildCustomCert` is exact (it only decodes).

use crate::value::FuncResult;
use std::rc::Rc;

use sha2::{Digest as _, Sha256, Sha512};

use super::args::{self, take};
use super::encoding::{base64_decode_bytes, base64_encode};
use super::random;
use crate::value::{Object, Value};

/// SHA-1 (FIPS 180-4), for `sha1sum`.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Adler-32, for `adler32sum`.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn one_string(name: &str, args: Vec<Value>) -> FuncResult<Rc<str>> {
    let [s] = take(name, args)?;
    args::string(&s)
}

/// `sha1sum S`: hex SHA-1.
pub(crate) fn sha1sum(args: Vec<Value>) -> FuncResult {
    Ok(Value::from(hex::encode(sha1(
        one_string("sha1sum", args)?.as_bytes(),
    ))))
}

/// `sha256sum S`: hex SHA-256.
pub(crate) fn sha256sum(args: Vec<Value>) -> FuncResult {
    Ok(Value::from(hex::encode(
        &Sha256::digest(one_string("sha256sum", args)?.as_bytes())[..],
    )))
}

/// `sha512sum S`: hex SHA-512.
pub(crate) fn sha512sum(args: Vec<Value>) -> FuncResult {
    Ok(Value::from(hex::encode(
        &Sha512::digest(one_string("sha512sum", args)?.as_bytes())[..],
    )))
}

/// `adler32sum S`: the Adler-32 checksum in decimal.
pub(crate) fn adler32sum(args: Vec<Value>) -> FuncResult {
    Ok(Value::from(
        adler32(one_string("adler32sum", args)?.as_bytes()).to_string(),
    ))
}

/// Go's `bcrypt.DefaultCost`.
const BCRYPT_COST: u32 = 10;

/// A Go-style (`$2a$`, cost 10) bcrypt hash.
fn bcrypt_hash(password: &str) -> Result<String, String> {
    let parts = bcrypt::hash_with_result(password, BCRYPT_COST).map_err(|e| e.to_string())?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

/// `bcrypt S`.
pub(crate) fn bcrypt_fn(args: Vec<Value>) -> FuncResult {
    let s = one_string("bcrypt", args)?;
    Ok(Value::from(bcrypt_hash(&s).unwrap_or_else(|e| {
        format!("failed to encrypt string with bcrypt: {e}")
    })))
}

/// `htpasswd USER PASSWORD`: an Apache `user:bcrypt-hash` line.
pub(crate) fn htpasswd(args: Vec<Value>) -> FuncResult {
    let [u, p] = take("htpasswd", args)?;
    let (u, p) = (args::string(&u)?, args::string(&p)?);
    if u.contains(':') {
        return Ok(Value::from(format!("invalid username: {u}")));
    }
    Ok(Value::from(match bcrypt_hash(&p) {
        Ok(h) => format!("{u}:{h}"),
        Err(e) => format!("failed to create htpasswd: {e}"),
    }))
}

/// HMAC-SHA256.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key)[..]);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(&inner.finalize()[..]);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize()[..]);
    out
}

/// PBKDF2-HMAC-SHA256 with one iteration (all scrypt needs).
fn pbkdf2_once(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 1u32;
    while out.len() < len {
        let mut s = salt.to_vec();
        s.extend_from_slice(&i.to_be_bytes());
        out.extend_from_slice(&hmac_sha256(password, &s));
        i += 1;
    }
    out.truncate(len);
    out
}

fn salsa20_8(b: &mut [u32; 16]) {
    let mut x = *b;
    for _ in 0..4 {
        macro_rules! qr {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                x[$b] ^= x[$a].wrapping_add(x[$d]).rotate_left(7);
                x[$c] ^= x[$b].wrapping_add(x[$a]).rotate_left(9);
                x[$d] ^= x[$c].wrapping_add(x[$b]).rotate_left(13);
                x[$a] ^= x[$d].wrapping_add(x[$c]).rotate_left(18);
            };
        }
        qr!(0, 4, 8, 12);
        qr!(5, 9, 13, 1);
        qr!(10, 14, 2, 6);
        qr!(15, 3, 7, 11);
        qr!(0, 1, 2, 3);
        qr!(5, 6, 7, 4);
        qr!(10, 11, 8, 9);
        qr!(15, 12, 13, 14);
    }
    for (bi, xi) in b.iter_mut().zip(x) {
        *bi = bi.wrapping_add(xi);
    }
}

fn block_mix(input: &[u32], out: &mut [u32], r: usize) {
    let mut x = [0u32; 16];
    x.copy_from_slice(&input[(2 * r - 1) * 16..2 * r * 16]);
    for i in 0..2 * r {
        for (xj, bj) in x.iter_mut().zip(&input[i * 16..i * 16 + 16]) {
            *xj ^= bj;
        }
        salsa20_8(&mut x);
        let dst = if i % 2 == 0 {
            (i / 2) * 16
        } else {
            (r + i / 2) * 16
        };
        out[dst..dst + 16].copy_from_slice(&x);
    }
}

/// scrypt (RFC 7914).
fn scrypt(password: &[u8], salt: &[u8], n: usize, r: usize, p: usize, len: usize) -> Vec<u8> {
    let words = 32 * r;
    let mut b = pbkdf2_once(password, salt, p * 128 * r);
    let mut v = vec![0u32; n * words];
    let mut x = vec![0u32; words];
    let mut y = vec![0u32; words];
    for chunk in b.chunks_mut(128 * r) {
        for (xi, w) in x.iter_mut().zip(chunk.chunks(4)) {
            *xi = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        }
        for i in 0..n {
            v[i * words..(i + 1) * words].copy_from_slice(&x);
            block_mix(&x, &mut y, r);
            std::mem::swap(&mut x, &mut y);
        }
        for _ in 0..n {
            let j = (x[(2 * r - 1) * 16] as usize) & (n - 1);
            for (xi, vi) in x.iter_mut().zip(&v[j * words..(j + 1) * words]) {
                *xi ^= vi;
            }
            block_mix(&x, &mut y, r);
            std::mem::swap(&mut x, &mut y);
        }
        for (w, xi) in chunk.chunks_mut(4).zip(&x) {
            w.copy_from_slice(&xi.to_le_bytes());
        }
    }
    pbkdf2_once(password, &b, len)
}

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_chars(c: u8) -> &'static [u8] {
    match c {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// `derivePassword COUNTER TYPE PASSWORD USER SITE`: the Master Password algorithm (scrypt + HMAC).
pub(crate) fn derive_password(args: Vec<Value>) -> FuncResult {
    let [counter, kind, password, user, site] = take("derivePassword", args)?;
    let counter = match &counter {
        Value::Int(i) if u32::try_from(*i).is_ok() => *i as u32,
        other => return Err(args::type_error("uint32", other).into()),
    };
    let (kind, password, user, site) = (
        args::string(&kind)?,
        args::string(&password)?,
        args::string(&user)?,
        args::string(&site)?,
    );
    let Some(templates) = password_templates(&kind) else {
        return Ok(Value::from(format!("cannot find password template {kind}")));
    };
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let mut salt = SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let key = scrypt(password.as_bytes(), &salt, 32_768, 8, 2, 64);
    let mut msg = SEED.to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(site.as_bytes());
    msg.extend_from_slice(&counter.to_be_bytes());
    let seed = hmac_sha256(&key, &msg);
    let template = templates[seed[0] as usize % templates.len()].as_bytes();
    let out: String = template
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_chars(*c);
            chars[seed[i + 1] as usize % chars.len()] as char
        })
        .collect();
    Ok(Value::from(out))
}

/// AES-256 block cipher (FIPS 197), enough for sprig's CBC mode.
struct Aes256 {
    round_keys: [[u8; 16]; 15],
}

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

fn sboxes() -> &'static ([u8; 256], [u8; 256]) {
    static BOXES: std::sync::OnceLock<([u8; 256], [u8; 256])> = std::sync::OnceLock::new();
    BOXES.get_or_init(|| {
        let mut sbox = [0u8; 256];
        let mut inv = [0u8; 256];
        for x in 0..=255u8 {
            let inverse = if x == 0 {
                0
            } else {
                (1..=255u8).find(|y| gf_mul(x, *y) == 1).unwrap_or(0)
            };
            let mut s = inverse;
            for shift in 1..5 {
                s ^= inverse.rotate_left(shift);
            }
            s ^= 0x63;
            sbox[x as usize] = s;
            inv[s as usize] = x;
        }
        (sbox, inv)
    })
}

impl Aes256 {
    fn new(key: &[u8; 32]) -> Aes256 {
        let (sbox, _) = sboxes();
        let mut w = [[0u8; 4]; 60];
        for i in 0..8 {
            w[i].copy_from_slice(&key[4 * i..4 * i + 4]);
        }
        let mut rcon = 1u8;
        for i in 8..60 {
            let mut t = w[i - 1];
            if i % 8 == 0 {
                t = [
                    sbox[t[1] as usize] ^ rcon,
                    sbox[t[2] as usize],
                    sbox[t[3] as usize],
                    sbox[t[0] as usize],
                ];
                rcon = gf_mul(rcon, 2);
            } else if i % 8 == 4 {
                t = t.map(|b| sbox[b as usize]);
            }
            for j in 0..4 {
                w[i][j] = w[i - 8][j] ^ t[j];
            }
        }
        let mut round_keys = [[0u8; 16]; 15];
        for (r, rk) in round_keys.iter_mut().enumerate() {
            for c in 0..4 {
                rk[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
            }
        }
        Aes256 { round_keys }
    }

    fn add_key(state: &mut [u8; 16], key: &[u8; 16]) {
        for (s, k) in state.iter_mut().zip(key) {
            *s ^= k;
        }
    }

    fn encrypt(&self, block: &mut [u8; 16]) {
        let (sbox, _) = sboxes();
        Self::add_key(block, &self.round_keys[0]);
        for round in 1..15 {
            let mut s = block.map(|b| sbox[b as usize]);
            // ShiftRows: row r rotates left by r (column-major state).
            let t = s;
            for c in 0..4 {
                for r in 0..4 {
                    s[4 * c + r] = t[4 * ((c + r) % 4) + r];
                }
            }
            if round != 14 {
                for c in 0..4 {
                    let col = [s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]];
                    for r in 0..4 {
                        s[4 * c + r] = gf_mul(col[r], 2)
                            ^ gf_mul(col[(r + 1) % 4], 3)
                            ^ col[(r + 2) % 4]
                            ^ col[(r + 3) % 4];
                    }
                }
            }
            Self::add_key(&mut s, &self.round_keys[round]);
            *block = s;
        }
    }

    fn decrypt(&self, block: &mut [u8; 16]) {
        let (_, inv) = sboxes();
        Self::add_key(block, &self.round_keys[14]);
        for round in (0..14).rev() {
            let t = *block;
            let mut s = [0u8; 16];
            for c in 0..4 {
                for r in 0..4 {
                    s[4 * ((c + r) % 4) + r] = t[4 * c + r];
                }
            }
            let mut s = s.map(|b| inv[b as usize]);
            Self::add_key(&mut s, &self.round_keys[round]);
            if round != 0 {
                for c in 0..4 {
                    let col = [s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]];
                    for r in 0..4 {
                        s[4 * c + r] = gf_mul(col[r], 14)
                            ^ gf_mul(col[(r + 1) % 4], 11)
                            ^ gf_mul(col[(r + 2) % 4], 13)
                            ^ gf_mul(col[(r + 3) % 4], 9);
                    }
                }
            }
            *block = s;
        }
    }
}

/// sprig's AES key: the password's bytes, zero-padded (or cut) to 32.
fn aes_key(password: &str) -> Aes256 {
    let mut key = [0u8; 32];
    let n = password.len().min(32);
    key[..n].copy_from_slice(&password.as_bytes()[..n]);
    Aes256::new(&key)
}

/// `encryptAES PASSWORD TEXT`: AES-256-CBC with a random IV first, padded, base64-encoded.
pub(crate) fn encrypt_aes(args: Vec<Value>) -> FuncResult {
    let [password, text] = take("encryptAES", args)?;
    let (password, text) = (args::string(&password)?, args::string(&text)?);
    if text.is_empty() {
        return Ok(Value::from(""));
    }
    let cipher = aes_key(&password);
    let mut data = text.as_bytes().to_vec();
    let pad = 16 - data.len() % 16;
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&random::bytes(16));
    let mut out = prev.to_vec();
    for chunk in data.chunks(16) {
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = chunk[i] ^ prev[i];
        }
        cipher.encrypt(&mut block);
        out.extend_from_slice(&block);
        prev = block;
    }
    Ok(Value::from(base64_encode(&out)))
}

/// `decryptAES PASSWORD BASE64`: the inverse of `encryptAES`.
pub(crate) fn decrypt_aes(args: Vec<Value>) -> FuncResult {
    let [password, text] = take("decryptAES", args)?;
    let (password, text) = (args::string(&password)?, args::string(&text)?);
    let data = base64_decode_bytes(&text)?;
    if data.len() < 16 {
        return Err("cipherText too short".to_string().into());
    }
    if data.len() % 16 != 0 {
        return Err("cipherText is not a multiple of the block size"
            .to_string()
            .into());
    }
    let cipher = aes_key(&password);
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&data[..16]);
    let mut out = Vec::with_capacity(data.len() - 16);
    for chunk in data[16..].chunks(16) {
        let mut block = [0u8; 16];
        block.copy_from_slice(chunk);
        let saved = block;
        cipher.decrypt(&mut block);
        for i in 0..16 {
            block[i] ^= prev[i];
        }
        out.extend_from_slice(&block);
        prev = saved;
    }
    // sprig strips the last byte's count of padding without checking it (Go panics when it is too big).
    if let Some(&pad) = out.last() {
        let keep = out.len() as i64 - i64::from(pad);
        if keep < 0 {
            return Err(format!("runtime error: slice bounds out of range [:{keep}]").into());
        }
        out.truncate(keep as usize);
    }
    Ok(Value::from(String::from_utf8_lossy(&out).into_owned()))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A private key in PEM; see the module notes on which are placeholders.
fn private_key(kind: &str) -> Option<String> {
    Some(match kind {
        "" | "rsa" => pem("RSA PRIVATE KEY", &random::bytes(2349)),
        "dsa" => pem("DSA PRIVATE KEY", &random::bytes(445)),
        "ecdsa" => pem("EC PRIVATE KEY", &random::bytes(121)),
        "ed25519" => {
            // PKCS#8 v1 around a random seed: a real key, as Go's MarshalPKCS8PrivateKey writes it.
            let mut der = hex::decode("302e020100300506032b657004220420").unwrap_or_default();
            der.extend_from_slice(&random::bytes(32));
            pem("PRIVATE KEY", &der)
        }
        _ => return None,
    })
}

/// `genPrivateKey TYPE` (rsa, dsa, ecdsa, ed25519).
pub(crate) fn gen_private_key(args: Vec<Value>) -> FuncResult {
    let kind = one_string("genPrivateKey", args)?;
    Ok(Value::from(
        private_key(&kind).unwrap_or_else(|| "Unknown type ".to_string() + &kind),
    ))
}

/// sprig's `certificate` struct: `.Cert` and `.Key` PEM strings.
#[derive(Debug)]
struct Certificate {
    cert: String,
    key: String,
}

impl Object for Certificate {
    fn type_name(&self) -> &str {
        "sprig.certificate"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Cert" => Some(Value::from(self.cert.as_str())),
            "Key" => Some(Value::from(self.key.as_str())),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!("{{{} {}}}", self.cert, self.key)
    }
}

fn placeholder_cert(key: Option<String>) -> Value {
    let key = key.unwrap_or_else(|| private_key("rsa").unwrap_or_default());
    Value::Object(Rc::new(Certificate {
        cert: pem("CERTIFICATE", &random::bytes(1100)),
        key,
    }))
}

fn pem_key_arg(v: &Value) -> FuncResult<String> {
    let key = args::string(v)?;
    if !key.contains("-----BEGIN") {
        return Err("unable to decode PEM key".into());
    }
    Ok(key.to_string())
}

fn check_count(name: &str, args: &[Value], want: usize) -> Result<(), String> {
    if args.len() != want {
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// `genCA CN DAYS`.
pub(crate) fn gen_ca(args: Vec<Value>) -> FuncResult {
    check_count("genCA", &args, 2)?;
    Ok(placeholder_cert(None))
}

/// `genCAWithKey CN DAYS KEY`.
pub(crate) fn gen_ca_with_key(args: Vec<Value>) -> FuncResult {
    check_count("genCAWithKey", &args, 3)?;
    Ok(placeholder_cert(Some(pem_key_arg(&args[2])?)))
}

/// `genSelfSignedCert CN IPS SANS DAYS`.
pub(crate) fn gen_self_signed_cert(args: Vec<Value>) -> FuncResult {
    check_count("genSelfSignedCert", &args, 4)?;
    Ok(placeholder_cert(None))
}

/// `genSelfSignedCertWithKey CN IPS SANS DAYS KEY`.
pub(crate) fn gen_self_signed_cert_with_key(args: Vec<Value>) -> FuncResult {
    check_count("genSelfSignedCertWithKey", &args, 5)?;
    Ok(placeholder_cert(Some(pem_key_arg(&args[4])?)))
}

/// `genSignedCert CN IPS SANS DAYS CA`.
pub(crate) fn gen_signed_cert(args: Vec<Value>) -> FuncResult {
    check_count("genSignedCert", &args, 5)?;
    Ok(placeholder_cert(None))
}

/// `genSignedCertWithKey CN IPS SANS DAYS CA KEY`.
pub(crate) fn gen_signed_cert_with_key(args: Vec<Value>) -> FuncResult {
    check_count("genSignedCertWithKey", &args, 6)?;
    Ok(placeholder_cert(Some(pem_key_arg(&args[5])?)))
}

/// `buildCustomCert BASE64_CERT BASE64_KEY`: a certificate object from existing PEM text.
pub(crate) fn build_custom_cert(args: Vec<Value>) -> FuncResult {
    let [c, k] = take("buildCustomCert", args)?;
    let (c, k) = (args::string(&c)?, args::string(&k)?);
    let cert =
        base64_decode_bytes(&c).map_err(|_| "unable to decode base64 certificate".to_string())?;
    let key =
        base64_decode_bytes(&k).map_err(|_| "unable to decode base64 private key".to_string())?;
    let (cert, key) = (
        String::from_utf8_lossy(&cert).into_owned(),
        String::from_utf8_lossy(&key).into_owned(),
    );
    if !(cert.contains("-----BEGIN CERTIFICATE-----") && cert.contains("-----END CERTIFICATE-----"))
    {
        return Err("unable to decode certificate".to_string().into());
    }
    if !(key.contains("-----BEGIN") && key.contains("-----END")) {
        return Err("error parsing private key: unable to decode PEM key"
            .to_string()
            .into());
    }
    Ok(Value::Object(Rc::new(Certificate { cert, key })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(adler32(b"abc"), 38_600_999);
    }

    #[test]
    fn aes_round_trips_and_matches_fips_197() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let cipher = Aes256::new(&key);
        let mut block: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        cipher.encrypt(&mut block);
        assert_eq!(hex::encode(block), "8ea2b7ca516745bfeafc49904b496089");
        cipher.decrypt(&mut block);
        assert_eq!(hex::encode(block), "00112233445566778899aabbccddeeff");
        let enc =
            encrypt_aes(vec![Value::from("pw"), Value::from("secret text")]).expect("encrypts");
        let dec = decrypt_aes(vec![Value::from("pw"), enc]).expect("decrypts");
        assert_eq!(dec, Value::from("secret text"));
    }
}
