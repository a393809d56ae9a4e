# EDGEFIT_FUZZ=ON: the libFuzzer target `fuzz_loader` (csrc/tests/fuzz_loader.cc). Included before
# any target so the whole core gets coverage instrumentation, ASan and UBSan (UB aborts: a fuzzer
# must stop on it). Clang only: GCC has no libFuzzer.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR
    "EDGEFIT_FUZZ=ON needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: configure a fresh build "
    "directory with -DCMAKE_CXX_COMPILER=clang++ (Debian 12: apt-get install clang libclang-rt-14-dev)")
endif()
if(EDGEFIT_BUILD_PYTHON)
  message(FATAL_ERROR "EDGEFIT_FUZZ=ON builds no Python module: add -DEDGEFIT_BUILD_PYTHON=OFF")
endif()

include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=fuzzer")
check_cxx_source_compiles([=[
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
]=] EDGEFIT_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(NOT EDGEFIT_HAVE_LIBFUZZER)
  message(FATAL_ERROR
    "EDGEFIT_FUZZ=ON: ${CMAKE_CXX_COMPILER} cannot link -fsanitize=fuzzer; the libFuzzer runtime "
    "is missing (Debian 12: apt-get install libclang-rt-14-dev)")
endif()

add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)

function(edgefit_add_fuzzer name source)
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE edgefit_core)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()
