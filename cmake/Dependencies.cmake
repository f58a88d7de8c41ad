# Third-party libraries, all from Debian packages (scripts/deps.sh installs them).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(PkgConfig REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
# libzmq >= 4.3.3 (CVE-2019-13132, CVE-2020-15166); cppzmq is header-only and comes with it.
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq>=4.3.3)
find_path(CPPZMQ_INCLUDE zmq.hpp REQUIRED)
# msgpack-cxx is header-only; MSGPACK_NO_BOOST keeps Boost out of its headers.
find_path(MSGPACK_INCLUDE msgpack.hpp REQUIRED)
add_library(murmur_msgpack INTERFACE)
target_include_directories(murmur_msgpack SYSTEM INTERFACE ${MSGPACK_INCLUDE} ${CPPZMQ_INCLUDE})
target_compile_definitions(murmur_msgpack INTERFACE MSGPACK_NO_BOOST)

# OpenBLAS, OpenMP flavour: inside our own OpenMP regions it runs single-threaded
# instead of oversubscribing, and its results are deterministic for a fixed
# thread count (needed for bit-identical resume).
# Debian's openblas-openmp directories, under CMAKE_PREFIX_PATH first (packages
# unpacked into a prefix, as scripts/gpu_check.sh does), then under /usr.
set(_openblas_libs)
set(_openblas_includes)
foreach(_prefix IN LISTS CMAKE_PREFIX_PATH ITEMS /usr)
  foreach(_arch IN ITEMS ${CMAKE_LIBRARY_ARCHITECTURE} x86_64-linux-gnu aarch64-linux-gnu)
    list(APPEND _openblas_libs ${_prefix}/lib/${_arch}/openblas-openmp)
    list(APPEND _openblas_includes ${_prefix}/include/${_arch}/openblas-openmp)
  endforeach()
endforeach()
find_library(OPENBLAS_LIB openblas PATHS ${_openblas_libs} NO_DEFAULT_PATH)
if(NOT OPENBLAS_LIB)
  find_library(OPENBLAS_LIB openblas REQUIRED)
endif()
find_path(OPENBLAS_INCLUDE cblas.h PATHS ${_openblas_includes} NO_DEFAULT_PATH)
if(NOT OPENBLAS_INCLUDE)
  find_path(OPENBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas REQUIRED)
endif()
add_library(murmur_blas INTERFACE)
target_link_libraries(murmur_blas INTERFACE ${OPENBLAS_LIB})
target_include_directories(murmur_blas SYSTEM INTERFACE ${OPENBLAS_INCLUDE})
message(STATUS "murmur: BLAS ${OPENBLAS_LIB}")
