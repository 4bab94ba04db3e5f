// The emulator's stand-in for CUDA's cuda_bf16.h: __nv_bfloat16 as the top 16 bits of a float, rounded
// to nearest even as __float2bfloat16_rn does (NaN stays NaN).
#pragma once
#include <cstring>
struct __nv_bfloat16 {
    unsigned short bits;
};
inline float __bfloat162float(__nv_bfloat16 h) {
    unsigned u = (unsigned)h.bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float x) {
    unsigned u;
    std::memcpy(&u, &x, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.bits = 0x7fc0;
    } else {
        h.bits = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    return h;
}
