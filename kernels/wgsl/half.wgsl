// float16 helpers, appended (after `enable f16;`) to kernels that store f16. WGSL leaves the rounding of
// f16(x) to the implementation, so conversions are done on the bits: round to nearest even, overflow to
// infinity, subnormals kept, NaN stays NaN: the same bits as f32ToF16 in src/tensor/dtype.ts.
fn to_f16(x: f32) -> f16 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let e8 = (bits >> 23u) & 0xffu;
  var mant = bits & 0x7fffffu;
  var h = sign;
  if (e8 == 0xffu) {
    h = sign | 0x7c00u | select(0u, 0x200u, mant != 0u);
  } else {
    let e = i32(e8) - 112; // rebias 127 -> 15
    if (e >= 31) {
      h = sign | 0x7c00u;
    } else if (e <= 0) {
      if (e >= -10) {
        mant = mant | 0x800000u;
        let shift = u32(14 - e);
        var half = mant >> shift;
        let rem = mant & ((1u << shift) - 1u);
        let mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u) == 1u)) { half += 1u; }
        h = sign | half;
      }
    } else {
      var half = (u32(e) << 10u) | (mant >> 13u);
      let rem = mant & 0x1fffu;
      if (rem > 0x1000u || (rem == 0x1000u && (half & 1u) == 1u)) { half += 1u; } // a carry rounds up a binade (or to inf)
      h = sign | half;
    }
  }
  return bitcast<vec2<f16>>(h).x;
}

fn to_f16v(v: vec4<f32>) -> vec4<f16> { return vec4<f16>(to_f16(v.x), to_f16(v.y), to_f16(v.z), to_f16(v.w)); }
