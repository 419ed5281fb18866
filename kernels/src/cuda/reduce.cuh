// Fixed-order reductions shared by the CUDA objectives (prepended to each module's source).

#define SUM_THREADS 256

// Fixed-shape tree over a power-of-two block: the order of additions depends on nothing else.
__device__ void tree_sum(double* s, int n, int t) {
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
}

// out[j] = sum over p of parts[p * width + j], one block per j.
extern "C" __global__ void sum_parts(const double* __restrict__ parts, long long n, int width,
                                     double* __restrict__ out) {
    __shared__ double s[SUM_THREADS];
    const int t = threadIdx.x, j = blockIdx.x;
    double acc = 0.0;
    for (long long p = t; p < n; p += SUM_THREADS) acc += parts[p * width + j];
    s[t] = acc;
    __syncthreads();
    tree_sum(s, SUM_THREADS, t);
    if (t == 0) out[j] = s[0];
}
