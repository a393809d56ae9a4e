// Device, memory and stream helpers of the CUDA host API: thin wrappers so C++ code compiled
// without CUDA headers (the executor) can manage device buffers and the one stream it uses.
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {

int device_count() {
  int n = 0;
  // No driver or no device reports an error here; both mean "no CUDA device".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls do not see it
    return 0;
  }
  return n;
}

const char* error_string(int err) { return cudaGetErrorString(cudaError_t(err)); }

int device_capability(int device, int* major, int* minor) {
  cudaError_t e = cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device);
  return int(e);
}

int malloc_device(void** ptr, size_t bytes) { return int(cudaMalloc(ptr, bytes)); }
int free_device(void* ptr) { return int(cudaFree(ptr)); }
int malloc_pinned(void** ptr, size_t bytes) { return int(cudaMallocHost(ptr, bytes)); }
int free_pinned(void* ptr) { return int(cudaFreeHost(ptr)); }

int copy_to_device(void* dst, const void* host_src, size_t bytes, stream_t stream) {
  return int(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream));
}
int copy_to_host(void* host_dst, const void* src, size_t bytes, stream_t stream) {
  return int(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream));
}
int copy_on_device(void* dst, const void* src, size_t bytes, stream_t stream) {
  return int(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}
int copy_2d_on_device(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                      size_t rows, stream_t stream) {
  if (width == 0 || rows == 0) return 0;
  return int(
      cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, stream));
}

int stream_create(stream_t* stream) {
  cudaStream_t s = nullptr;
  const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  *stream = s;
  return int(e);
}
int stream_destroy(stream_t stream) { return int(cudaStreamDestroy(stream)); }
int stream_synchronize(stream_t stream) { return int(cudaStreamSynchronize(stream)); }

int event_create(event_t* event) {
  cudaEvent_t e = nullptr;
  const cudaError_t err = cudaEventCreate(&e);
  *event = e;
  return int(err);
}
int event_destroy(event_t event) { return int(cudaEventDestroy(event)); }
int event_record(event_t event, stream_t stream) { return int(cudaEventRecord(event, stream)); }
int event_elapsed_ms(event_t start, event_t end, float* ms) {
  return int(cudaEventElapsedTime(ms, start, end));
}

namespace detail {

int multiprocessor_count() {
  static const int count = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) {
      cudaGetLastError();
      return 1;
    }
    return n;
  }();
  return count;
}

}  // namespace detail

}  // namespace cuda
}  // namespace edgefit
