// The emulator's stand-in for CUDA's cuda_fp16.h: __half as its 16 bits, conversions rounding to nearest
// even (GCC's _Float16), as __float2half_rn does on the GPU.
#pragma once
#include <cstring>
struct __half {
    unsigned short bits;
};
inline float __half2float(__half h) {
    _Float16 f;
    std::memcpy(&f, &h.bits, 2);
    return (float)f;
}
inline __half __float2half_rn(float x) {
    _Float16 f = (_Float16)x;
    __half h;
    std::memcpy(&h.bits, &f, 2);
    return h;
}
