//! Arithmetic: sprig's integer math (arguments converted with `cast.ToInt64`, so floats truncate), its
//! float math through shopspring/decimal (exact decimal arithmetic on the floats' shortest forms), and
//! ranges (`until`, `untilStep`).

use super::args::{self, at_least, take};
use super::conversion::{to_float64, to_int64};
use crate::value::FuncResult;
use crate::value::Value;

/// `add ARGS...`: the integer sum.
pub(crate) fn add(args: Vec<Value>) -> FuncResult {
    Ok(Value::Int64(
        args.iter().fold(0i64, |a, b| a.wrapping_add(to_int64(b))),
    ))
}

/// `add1 X`: X + 1 as an integer.
pub(crate) fn add1(args: Vec<Value>) -> FuncResult {
    let [a] = take("add1", args)?;
    Ok(Value::Int64(to_int64(&a).wrapping_add(1)))
}

/// `sub A B`.
pub(crate) fn sub(args: Vec<Value>) -> FuncResult {
    let [a, b] = take("sub", args)?;
    Ok(Value::Int64(to_int64(&a).wrapping_sub(to_int64(&b))))
}

/// `div A B`: integer division; dividing by zero fails as Go's runtime does.
pub(crate) fn div(args: Vec<Value>) -> FuncResult {
    let [a, b] = take("div", args)?;
    let (a, b) = (to_int64(&a), to_int64(&b));
    if b == 0 {
        return Err("runtime error: integer divide by zero".to_string().into());
    }
    Ok(Value::Int64(a.wrapping_div(b)))
}

/// `mod A B`: Go's remainder (the sign follows A).
pub(crate) fn modulo(args: Vec<Value>) -> FuncResult {
    let [a, b] = take("mod", args)?;
    let (a, b) = (to_int64(&a), to_int64(&b));
    if b == 0 {
        return Err("runtime error: integer divide by zero".to_string().into());
    }
    Ok(Value::Int64(a.wrapping_rem(b)))
}

/// `mul A ARGS...`: the integer product.
pub(crate) fn mul(args: Vec<Value>) -> FuncResult {
    at_least("mul", &args, 1)?;
    Ok(Value::Int64(
        args[1..]
            .iter()
            .fold(to_int64(&args[0]), |a, b| a.wrapping_mul(to_int64(b))),
    ))
}

/// `max A ARGS...` and `biggest`: the largest as an integer.
pub(crate) fn max(args: Vec<Value>) -> FuncResult {
    at_least("max", &args, 1)?;
    Ok(Value::Int64(args.iter().map(to_int64).max().unwrap_or(0)))
}

/// `min A ARGS...`: the smallest as an integer.
pub(crate) fn min(args: Vec<Value>) -> FuncResult {
    at_least("min", &args, 1)?;
    Ok(Value::Int64(args.iter().map(to_int64).min().unwrap_or(0)))
}

/// `maxf A ARGS...`: Go's `math.Max` over the floats.
pub(crate) fn maxf(args: Vec<Value>) -> FuncResult {
    at_least("maxf", &args, 1)?;
    let first = to_float64(&args[0]);
    Ok(Value::Float(args[1..].iter().map(to_float64).fold(
        first,
        |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        },
    )))
}

/// `minf A ARGS...`: Go's `math.Min` over the floats.
pub(crate) fn minf(args: Vec<Value>) -> FuncResult {
    at_least("minf", &args, 1)?;
    let first = to_float64(&args[0]);
    Ok(Value::Float(args[1..].iter().map(to_float64).fold(
        first,
        |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        },
    )))
}

/// `floor X`.
pub(crate) fn floor(args: Vec<Value>) -> FuncResult {
    let [a] = take("floor", args)?;
    Ok(Value::Float(to_float64(&a).floor()))
}

/// `ceil X`.
pub(crate) fn ceil(args: Vec<Value>) -> FuncResult {
    let [a] = take("ceil", args)?;
    Ok(Value::Float(to_float64(&a).ceil()))
}

/// `round X PLACES [ROUND_ON]`: sprig's rounding (up when the fraction is at least ROUND_ON, default .5).
pub(crate) fn round(args: Vec<Value>) -> FuncResult {
    at_least("round", &args, 2)?;
    let val = to_float64(&args[0]);
    let places = args::int(&args[1])? as f64;
    let round_on = match args.get(2) {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i) | Value::Int64(i)) => *i as f64,
        Some(other) => return Err(args::type_error("float64", other).into()),
        None => 0.5,
    };
    let pow = 10f64.powf(places);
    let digit = pow * val;
    let frac = digit.fract();
    let rounded = if frac >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(rounded / pow))
}

/// `until N`: 0..N (counting down for negative N).
pub(crate) fn until(args: Vec<Value>) -> FuncResult {
    let [n] = take("until", args)?;
    let n = args::int(&n)?;
    let step = if n < 0 { -1 } else { 1 };
    Ok(int_list(until_step(0, n, step)))
}

/// `untilStep START STOP STEP`.
pub(crate) fn until_step_fn(args: Vec<Value>) -> FuncResult {
    let [a, b, c] = take("untilStep", args)?;
    Ok(int_list(until_step(
        args::int(&a)?,
        args::int(&b)?,
        args::int(&c)?,
    )))
}

fn int_list(v: Vec<i64>) -> Value {
    Value::from(v.into_iter().map(Value::Int).collect::<Vec<_>>())
}

/// sprig's `untilStep`: from `start` toward `stop` (exclusive) by `step`; empty when the step points away.
pub(crate) fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if stop < start {
        if step >= 0 {
            return out;
        }
        let mut i = start;
        while i > stop {
            out.push(i);
            match i.checked_add(step) {
                Some(next) => i = next,
                None => break,
            }
        }
        return out;
    }
    if step <= 0 {
        return out;
    }
    let mut i = start;
    while i < stop {
        out.push(i);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    out
}

/// `randInt MIN MAX`: a random integer in [MIN, MAX).
pub(crate) fn rand_int(args: Vec<Value>) -> FuncResult {
    let [a, b] = take("randInt", args)?;
    let (lo, hi) = (args::int(&a)?, args::int(&b)?);
    if hi <= lo {
        return Err("invalid argument to Intn".to_string().into());
    }
    // Go's Intn takes an int: a span beyond int64 is its "invalid argument" panic too.
    let Some(span) = hi.checked_sub(lo) else {
        return Err("invalid argument to Intn".to_string().into());
    };
    Ok(Value::Int(lo + super::random::below(span as u64) as i64))
}

/// A decimal number `coef * 10^exp`, as shopspring/decimal holds it (bounded to i128 here; results that
/// do not fit fall back to float arithmetic).
#[derive(Clone, Copy, Debug)]
struct Decimal {
    coef: i128,
    exp: i32,
}

impl Decimal {
    /// `decimal.NewFromFloat`: the float's shortest round-trip digits.
    fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let (int_part, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let coef: i128 = format!("{int_part}{frac}").parse().ok()?;
        Some(Decimal {
            coef,
            exp: exp - frac.len() as i32,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.coef, self.exp)
            .parse()
            .unwrap_or(f64::NAN)
    }

    fn rescale(self, exp: i32) -> Option<i128> {
        let shift = u32::try_from(self.exp - exp).ok()?;
        self.coef.checked_mul(10i128.checked_pow(shift)?)
    }

    fn add(self, o: Decimal) -> Option<Decimal> {
        let exp = self.exp.min(o.exp);
        Some(Decimal {
            coef: self.rescale(exp)?.checked_add(o.rescale(exp)?)?,
            exp,
        })
    }

    fn sub(self, o: Decimal) -> Option<Decimal> {
        self.add(Decimal {
            coef: o.coef.checked_neg()?,
            exp: o.exp,
        })
    }

    fn mul(self, o: Decimal) -> Option<Decimal> {
        Some(Decimal {
            coef: self.coef.checked_mul(o.coef)?,
            exp: self.exp.checked_add(o.exp)?,
        })
    }

    /// `Div`: rounded half away from zero to 16 decimal places.
    fn div(self, o: Decimal) -> Option<Decimal> {
        // self/o = (a*10^ea)/(b*10^eb); want q with exponent -16.
        let shift = self.exp - o.exp + 16;
        let (num, den) = if shift >= 0 {
            (
                self.coef.checked_mul(10i128.checked_pow(shift as u32)?)?,
                o.coef,
            )
        } else {
            (
                self.coef,
                o.coef.checked_mul(10i128.checked_pow((-shift) as u32)?)?,
            )
        };
        let q = num / den;
        let r = num % den;
        let q = if r.checked_mul(2)?.abs() >= den.abs() {
            q + if (num < 0) != (den < 0) { -1 } else { 1 }
        } else {
            q
        };
        Some(Decimal { coef: q, exp: -16 })
    }
}

/// sprig's `execDecimalOp`: folds `op` over the arguments as decimals, returning a float.
fn decimal_fold(
    first: f64,
    rest: &[Value],
    op: fn(Decimal, Decimal) -> Option<Decimal>,
    float_op: fn(f64, f64) -> f64,
    divides: bool,
) -> FuncResult {
    let mut acc = Decimal::from_f64(first);
    let mut facc = first;
    for v in rest {
        let x = to_float64(v);
        if divides && x == 0.0 {
            return Err("decimal division by 0".into());
        }
        acc = acc.zip(Decimal::from_f64(x)).and_then(|(a, b)| op(a, b));
        facc = float_op(facc, x);
    }
    Ok(Value::Float(acc.map_or(facc, Decimal::to_f64)))
}

/// `addf ARGS...`.
pub(crate) fn addf(args: Vec<Value>) -> FuncResult {
    decimal_fold(0.0, &args, Decimal::add, |a, b| a + b, false)
}

/// `add1f X`.
pub(crate) fn add1f(args: Vec<Value>) -> FuncResult {
    let [a] = take("add1f", args)?;
    decimal_fold(
        to_float64(&a),
        &[Value::Int(1)],
        Decimal::add,
        |a, b| a + b,
        false,
    )
}

/// `subf A ARGS...`.
pub(crate) fn subf(args: Vec<Value>) -> FuncResult {
    at_least("subf", &args, 1)?;
    decimal_fold(
        to_float64(&args[0]),
        &args[1..],
        Decimal::sub,
        |a, b| a - b,
        false,
    )
}

/// `mulf A ARGS...`.
pub(crate) fn mulf(args: Vec<Value>) -> FuncResult {
    at_least("mulf", &args, 1)?;
    decimal_fold(
        to_float64(&args[0]),
        &args[1..],
        Decimal::mul,
        |a, b| a * b,
        false,
    )
}

/// `divf A ARGS...`: dividing by zero fails ("decimal division by 0"), as sprig's decimal panics.
pub(crate) fn divf(args: Vec<Value>) -> FuncResult {
    at_least("divf", &args, 1)?;
    decimal_fold(
        to_float64(&args[0]),
        &args[1..],
        Decimal::div,
        |a, b| a / b,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_math_avoids_binary_float_noise() {
        let f = |v: FuncResult| match v {
            Ok(Value::Float(x)) => x,
            other => panic!("{other:?}"),
        };
        assert_eq!(f(addf(vec![Value::Float(1.1), Value::Float(2.2)])), 3.3);
        assert_eq!(f(subf(vec![Value::Int(1), Value::Float(0.9)])), 0.1);
        assert_eq!(
            f(divf(vec![Value::Int(1), Value::Int(3)])),
            0.3333333333333333
        );
        assert_eq!(
            f(divf(vec![Value::Int(2), Value::Int(3)])),
            0.6666666666666667
        );
        assert!(divf(vec![Value::Int(2), Value::Int(0)]).is_err());
    }
}
