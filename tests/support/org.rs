//! The small org the org and unit tests upload: six levels, Chinese names, a quoted name.
#![allow(dead_code)]

/// 中华人民共和国 > 广东省 > {广州市, 深圳市 > 南山区 > 粤海街道 > 科技园社区, 南区};
/// 中华人民共和国 > 北京市.
pub const PARTY_CSV: &str = "code,parent,name\n\
cn,,中华人民共和国\n\
gd,cn,广东省\n\
gz,gd,广州市\n\
sz,gd,深圳市\n\
ns,sz,南山区\n\
yh,ns,粤海街道\n\
kj,yh,\"科技园社区, 南区\"\n\
bj,cn,北京市\n";
