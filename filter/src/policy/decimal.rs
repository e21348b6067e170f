//! Numbers spelled in decimal for header values, without the formatting machinery: these
//! run on every cache hit (`Age`, `Cache-Status`), where `format!` costs more than the rest.

/// Appends `n` in decimal, without the formatting machinery (this runs on every hit).
pub fn push_decimal(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut n = n.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    for &d in digits.get(start..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::push_decimal;

    #[test]
    fn decimals_are_spelled_as_format_spells_them() {
        for n in [0, 7, 10, 99, 100, 65_535, -1, -86_400, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
