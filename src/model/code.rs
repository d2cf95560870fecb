//! Grid codes (网格编码) and names.
//!
//! A 12-digit community code (6-digit district per GB/T 2260 + 3-digit street + 3-digit
//! community, as in Beijing DB11/T 2157-2023) gives a 15-digit grid code: the 12 digits and a
//! 3-digit sequence. Any other community code gives `<community>-<3-digit sequence>`.

use std::fmt;

/// A grid's code, built only from a community code and a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GridCode(String);

impl GridCode {
    /// The code as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GridCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code of grid number `seq` (1-based) of a community.
///
/// ```
/// use wangge::model::grid_code;
/// assert_eq!(grid_code("110101001002", 7).as_str(), "110101001002007");
/// assert_eq!(grid_code("105", 12).as_str(), "105-012");
/// ```
#[must_use]
pub fn grid_code(community: &str, seq: usize) -> GridCode {
    if community.len() == 12 && community.bytes().all(|b| b.is_ascii_digit()) {
        GridCode(format!("{community}{seq:03}"))
    } else {
        GridCode(format!("{community}-{seq:03}"))
    }
}

/// The display name of grid number `seq`: community name + 第N网格 (Chinese numerals).
///
/// ```
/// use wangge::model::grid_name;
/// assert_eq!(grid_name("城东社区", 1), "城东社区第一网格");
/// assert_eq!(grid_name("城东社区", 12), "城东社区第十二网格");
/// ```
#[must_use]
pub fn grid_name(community_name: &str, seq: usize) -> String {
    format!("{community_name}第{}网格", chinese_number(seq))
}

/// A number in Chinese numerals (一, 十二, 一百零五), as used in names.
#[must_use]
pub fn chinese_ordinal(n: usize) -> String {
    chinese_number(n)
}

fn chinese_number(n: usize) -> String {
    const D: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    if n < 10 {
        return D[n].to_string();
    }
    if n < 20 {
        return format!("十{}", if n.is_multiple_of(10) { "" } else { D[n % 10] });
    }
    if n < 100 {
        return format!(
            "{}十{}",
            D[n / 10],
            if n.is_multiple_of(10) { "" } else { D[n % 10] }
        );
    }
    if n < 1000 {
        let rest = n % 100;
        let tail = if rest == 0 {
            String::new()
        } else if rest < 10 {
            format!("零{}", D[rest])
        } else if rest < 20 {
            format!("一{}", chinese_number(rest))
        } else {
            chinese_number(rest)
        };
        return format!("{}百{tail}", D[n / 100]);
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerals() {
        assert_eq!(chinese_number(20), "二十");
        assert_eq!(chinese_number(105), "一百零五");
        assert_eq!(chinese_number(110), "一百一十");
        assert_eq!(chinese_number(999), "九百九十九");
    }
}
