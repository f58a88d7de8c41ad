# MURMUR_CUDA=AUTO|ON|OFF. AUTO enables the CUDA backend when nvcc works; ON
# fails the configure loudly when it does not; OFF builds the CPU backend only.
string(TOUPPER "${MURMUR_CUDA}" MURMUR_CUDA)
if(NOT MURMUR_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "MURMUR_CUDA must be AUTO, ON or OFF (got '${MURMUR_CUDA}')")
endif()
set(MURMUR_HAVE_CUDA OFF)
if(NOT MURMUR_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # sm_90 SASS (H100/H200) plus compute_90 PTX as the fallback for newer GPUs.
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    # Stock CMake 3.25.1 (Debian 12) marks CUDA::nvToolsExt deprecated, when the
    # project requires CMake >= 3.25, without checking that the target exists; CUDA 13
    # has no nvToolsExt library, so configuring fails. Look the toolkit up as a 3.24
    # project (only that marking differs).
    set(_murmur_min_cmake ${CMAKE_MINIMUM_REQUIRED_VERSION})
    set(CMAKE_MINIMUM_REQUIRED_VERSION 3.24)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_MINIMUM_REQUIRED_VERSION ${_murmur_min_cmake})
    # CMake 3.25 does not know nvcc's C++20 flag (nvcc >= 12 has it), so a
    # C++20 target would fail at generate time: teach it.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA_STANDARD 20)
    set(MURMUR_HAVE_CUDA ON)
    # --use_fast_math turns on -ftz, approximate division and square root, FMA
    # contraction AND approximate expf/logf/tanhf. murmur_pin_cuda_numerics undoes
    # the first ones, nothing undoes the last: refuse it instead of drifting silently.
    string(TOUPPER "${CMAKE_BUILD_TYPE}" _murmur_build_type)
    foreach(_murmur_var CMAKE_CUDA_FLAGS CMAKE_CUDA_FLAGS_${_murmur_build_type})
      if("${${_murmur_var}}" MATCHES "use[-_]fast[-_]math")
        message(FATAL_ERROR "${_murmur_var} holds --use_fast_math: the CUDA codecs must give the CPU "
                            "codecs' bits and the CUDA model is checked against the CPU's exp/tanh "
                            "(docs/cuda.md, \"Numerics\"); remove it")
      endif()
    endforeach()
  elseif(MURMUR_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MURMUR_CUDA=ON but no working CUDA compiler (nvcc) was found; "
                        "install the CUDA toolkit or configure with -DMURMUR_CUDA=AUTO|OFF")
  endif()
endif()
message(STATUS "murmur: CUDA backend ${MURMUR_HAVE_CUDA} (MURMUR_CUDA=${MURMUR_CUDA})")

# Pins the nvcc floating-point flags a target's kernels rely on, so that a
# different default or a global flag cannot change their results unnoticed:
# denormals kept (-ftz=false), IEEE division and square root. EXACT adds
# --fmad=false (no multiply-add contraction) for kernels that must give the CPU
# code's bits. An explicit flag wins over --use_fast_math's implied ones whatever
# the order on the command line (checked with nvcc 13).
function(murmur_pin_cuda_numerics target)
  cmake_parse_arguments(P "EXACT" "" "" ${ARGN})
  set(flags -ftz=false -prec-div=true -prec-sqrt=true)
  if(P_EXACT)
    list(APPEND flags --fmad=false)
  endif()
  get_target_property(opts ${target} COMPILE_OPTIONS)
  if(opts AND "${opts}" MATCHES "use[-_]fast[-_]math")
    message(FATAL_ERROR "${target} is compiled with --use_fast_math; its kernels need exact math")
  endif()
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:${flags}>")
endfunction()
