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
    find_package(CUDAToolkit REQUIRED)
    # CMake 3.25 does not know nvcc's C++20 flag (nvcc >= 12 has it), so a
    # C++20 target would fail at generate time: teach it.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA_STANDARD 20)
    set(MURMUR_HAVE_CUDA ON)
  elseif(MURMUR_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MURMUR_CUDA=ON but no working CUDA compiler (nvcc) was found; "
                        "install the CUDA toolkit or configure with -DMURMUR_CUDA=AUTO|OFF")
  endif()
endif()
message(STATUS "murmur: CUDA backend ${MURMUR_HAVE_CUDA} (MURMUR_CUDA=${MURMUR_CUDA})")
