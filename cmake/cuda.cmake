# edgefit's CUDA kernel library (csrc/cuda, target edgefit_cuda) and its test program
# (edgefit_cuda_tests: every CUDA kernel against the scalar CPU kernels; exits 0 with
# "no CUDA device: skipped" where there is no GPU). Included by the top-level CMakeLists.txt when
# EDGEFIT_CUDA is ON, and by csrc/cuda/CMakeLists.txt for a standalone build of just this part.
#
# Architectures come from EDGEFIT_CUDA_ARCHS (default 87;90: Jetson Orin, H100/H200). CUDA 13
# compiles sm_75 and newer only; the Jetson Nano (sm_53) needs JetPack 4's CUDA 10.2 on the board.

set(EDGEFIT_CUDA_ARCHS "87;90" CACHE STRING
    "CUDA architectures: 87 Jetson Orin, 72 Xavier (CUDA <= 12), 53 Jetson Nano (CUDA 10.2 only)")
get_filename_component(EDGEFIT_CUDA_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR
    "EDGEFIT_CUDA is ON but no CUDA compiler was found. Install the CUDA toolkit (on a Jetson it "
    "comes with JetPack in /usr/local/cuda) and pass -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc, "
    "or build without -DEDGEFIT_CUDA=ON.")
endif()
enable_language(CUDA)

foreach(arch IN LISTS EDGEFIT_CUDA_ARCHS)
  if(NOT arch MATCHES "^[0-9]+(-real|-virtual)?$")
    message(FATAL_ERROR "EDGEFIT_CUDA_ARCHS entry '${arch}' is not an architecture number (e.g. 87)")
  endif()
  string(REGEX MATCH "^[0-9]+" num "${arch}")
  if(num EQUAL 53 AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER 10.2.999)
    message(FATAL_ERROR
      "sm_53 (Jetson Nano) cannot be built with CUDA ${CMAKE_CUDA_COMPILER_VERSION}: CUDA 13 "
      "compiles sm_75 and newer only, and the Nano's JetPack 4 driver runs CUDA 10.2 code only. "
      "Build on the Nano itself with JetPack 4's CUDA 10.2 (and CMake >= 3.18: `pip3 install cmake`):\n"
      "  cmake -S . -B build/nano -DEDGEFIT_CUDA=ON -DEDGEFIT_CUDA_ARCHS=53 "
      "-DCMAKE_CUDA_COMPILER=/usr/local/cuda-10.2/bin/nvcc -DEDGEFIT_BUILD_PYTHON=OFF\n"
      "  cmake --build build/nano -j4 && ./build/nano/edgefit_cuda_tests")
  endif()
  if(num LESS 75 AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 13)
    message(FATAL_ERROR
      "sm_${num} is not supported by CUDA ${CMAKE_CUDA_COMPILER_VERSION} (sm_75 and newer only): "
      "use the toolkit of the board's JetPack (CUDA 11.4 / 12.x for Xavier, sm_72) or remove it "
      "from EDGEFIT_CUDA_ARCHS")
  endif()
endforeach()

find_package(CUDAToolkit REQUIRED)

set(EDGEFIT_CUDA_SOURCES
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/cbgemm.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/conv.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/device.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/dwconv.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/elementwise.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/gemm.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/pool.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/quant.cu
  ${EDGEFIT_CUDA_ROOT}/csrc/cuda/spmm.cu
)
add_library(edgefit_cuda STATIC ${EDGEFIT_CUDA_SOURCES})
target_include_directories(edgefit_cuda PUBLIC ${EDGEFIT_CUDA_ROOT}/csrc)
# C++14 device code: the same sources build with CUDA 10.2 (Jetson Nano), which has no C++17.
set_target_properties(edgefit_cuda PROPERTIES
  CUDA_ARCHITECTURES "${EDGEFIT_CUDA_ARCHS}"
  CUDA_STANDARD 14
  CUDA_STANDARD_REQUIRED ON
  POSITION_INDEPENDENT_CODE ON)
# Never fast-math: quantize must round exactly as the CPU reference (IEEE division, rintf).
target_compile_options(edgefit_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)
# The static runtime: the Python module and the runner need no libcudart.so at run time.
target_link_libraries(edgefit_cuda PUBLIC CUDA::cudart_static)
target_compile_definitions(edgefit_cuda INTERFACE EDGEFIT_HAVE_CUDA=1)

# The test program compares with the scalar kernels: edgefit_core in the full build,
# edgefit_cuda_reference (csrc/cuda/CMakeLists.txt) in the standalone one. The CUDA executor
# needs the artifact loader: edgefit_core again, or edgefit_cuda_loader standalone.
if(TARGET edgefit_core)
  set(EDGEFIT_CUDA_REFERENCE edgefit_core)
  set(EDGEFIT_CUDA_LOADER edgefit_core)
else()
  set(EDGEFIT_CUDA_REFERENCE edgefit_cuda_reference)
  set(EDGEFIT_CUDA_LOADER edgefit_cuda_loader)
endif()
add_executable(edgefit_cuda_tests ${EDGEFIT_CUDA_ROOT}/csrc/cuda/tests/test_cuda_kernels.cu)
set_target_properties(edgefit_cuda_tests PROPERTIES
  CUDA_ARCHITECTURES "${EDGEFIT_CUDA_ARCHS}" CUDA_STANDARD 14 CUDA_STANDARD_REQUIRED ON)
target_link_libraries(edgefit_cuda_tests PRIVATE edgefit_cuda ${EDGEFIT_CUDA_REFERENCE})
if(COMMAND add_test)
  add_test(NAME edgefit_cuda_tests COMMAND edgefit_cuda_tests)
endif()

# CudaRuntime (plain C++ over the kernel API) and a runner for tests: model + .npy in, .npy out.
add_library(edgefit_cuda_runtime STATIC ${EDGEFIT_CUDA_ROOT}/csrc/cuda/cuda_executor.cc)
target_link_libraries(edgefit_cuda_runtime PUBLIC edgefit_cuda ${EDGEFIT_CUDA_LOADER})
set_target_properties(edgefit_cuda_runtime PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_executable(edgefit_cuda_run ${EDGEFIT_CUDA_ROOT}/csrc/cuda/tests/run_model.cc
                                ${EDGEFIT_CUDA_ROOT}/csrc/runner/npy.cc)
target_link_libraries(edgefit_cuda_run PRIVATE edgefit_cuda_runtime)
