# Locates LibTorch 2.11 (inside the `torch` Python wheel, or an official libtorch given with
# -DCMAKE_PREFIX_PATH / -DTorch_DIR) and defines `siglip2::torch`.
#
# With CUDA (a CUDA wheel and an nvcc on the machine, no GPU needed) TorchConfig is used as is and
# the NCCL backend is built. Without, only libtorch_cpu and libc10 are linked, bypassing
# TorchConfig, which would otherwise insist on a CUDA toolkit for a CUDA wheel.

if(NOT Torch_DIR)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c "import os, torch; print(os.path.dirname(torch.__file__))"
      OUTPUT_VARIABLE _siglip2_torch_root OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  if(NOT _siglip2_torch_root)
    foreach(_p ${CMAKE_PREFIX_PATH})
      if(EXISTS "${_p}/share/cmake/Torch/TorchConfig.cmake")
        set(_siglip2_torch_root "${_p}")
      elseif(EXISTS "${_p}/Torch/TorchConfig.cmake")
        get_filename_component(_siglip2_torch_root "${_p}/../.." ABSOLUTE)
      endif()
    endforeach()
  endif()
  if(NOT _siglip2_torch_root)
    message(FATAL_ERROR "LibTorch not found: install the wheel (python3 -m pip install torch==2.11.0) "
                        "or pass -DTorch_DIR=<libtorch>/share/cmake/Torch")
  endif()
  set(Torch_DIR "${_siglip2_torch_root}/share/cmake/Torch" CACHE PATH "LibTorch CMake directory")
endif()
get_filename_component(SIGLIP2_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)
if(NOT EXISTS "${SIGLIP2_TORCH_ROOT}/lib/libtorch_cpu.so")
  message(FATAL_ERROR "Torch_DIR=${Torch_DIR} does not point into a LibTorch tree (no lib/libtorch_cpu.so)")
endif()

set(_vfile "${SIGLIP2_TORCH_ROOT}/include/torch/headeronly/version.h")
if(NOT EXISTS "${_vfile}")
  set(_vfile "${SIGLIP2_TORCH_ROOT}/include/torch/csrc/api/include/torch/version.h")
endif()
foreach(_part MAJOR MINOR PATCH)
  file(STRINGS "${_vfile}" _line REGEX "define TORCH_VERSION_${_part} ")
  string(REGEX MATCH "[0-9]+$" _num "${_line}")
  list(APPEND _vparts "${_num}")
endforeach()
list(JOIN _vparts "." SIGLIP2_TORCH_VERSION)
if(NOT SIGLIP2_TORCH_VERSION VERSION_GREATER_EQUAL 2.11 OR SIGLIP2_TORCH_VERSION VERSION_GREATER_EQUAL 2.12)
  message(WARNING "siglip2-cpp is built and tested against LibTorch 2.11; found ${SIGLIP2_TORCH_VERSION}")
endif()

set(_wheel_has_cuda OFF)
if(EXISTS "${SIGLIP2_TORCH_ROOT}/lib/libtorch_cuda.so")
  set(_wheel_has_cuda ON)
endif()

set(SIGLIP2_HAVE_CUDA OFF)
if(SIGLIP2_CUDA STREQUAL "ON" OR (SIGLIP2_CUDA STREQUAL "AUTO" AND _wheel_has_cuda))
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER AND _wheel_has_cuda)
    set(SIGLIP2_HAVE_CUDA ON)
  elseif(SIGLIP2_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SIGLIP2_CUDA=ON needs a CUDA build of LibTorch and nvcc on PATH")
  endif()
endif()

add_library(siglip2_torch INTERFACE)
add_library(siglip2::torch ALIAS siglip2_torch)
# libtorch.so and libtorch_cpu.so export their own copies of std::filesystem functions, and some of
# them crash when called from our code (remove_all jumps to a null address). Putting libstdc++
# first among the needed libraries makes the dynamic linker resolve std:: symbols there.
target_link_options(siglip2_torch INTERFACE "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
# fmt is used header-only everywhere (see Siglip2Deps.cmake); set here so the precompiled header agrees.
target_compile_definitions(siglip2_torch INTERFACE FMT_HEADER_ONLY=1)

if(SIGLIP2_HAVE_CUDA)
  # TorchConfig wants cuDNN; the wheel's companion pip package ships it when the toolkit does not.
  if(NOT CUDNN_ROOT AND EXISTS "${SIGLIP2_TORCH_ROOT}/../nvidia/cudnn")
    get_filename_component(CUDNN_ROOT "${SIGLIP2_TORCH_ROOT}/../nvidia/cudnn" ABSOLUTE)
  endif()
  if(NOT TORCH_CUDA_ARCH_LIST)
    set(TORCH_CUDA_ARCH_LIST "9.0")
  endif()
  find_package(Torch REQUIRED CONFIG PATHS "${Torch_DIR}" NO_DEFAULT_PATH)
  target_link_libraries(siglip2_torch INTERFACE ${TORCH_LIBRARIES})
else()
  add_library(siglip2_torch_cpu SHARED IMPORTED)
  set_target_properties(siglip2_torch_cpu PROPERTIES IMPORTED_LOCATION "${SIGLIP2_TORCH_ROOT}/lib/libtorch_cpu.so")
  add_library(siglip2_c10 SHARED IMPORTED)
  set_target_properties(siglip2_c10 PROPERTIES IMPORTED_LOCATION "${SIGLIP2_TORCH_ROOT}/lib/libc10.so")
  target_include_directories(siglip2_torch SYSTEM INTERFACE
    "${SIGLIP2_TORCH_ROOT}/include" "${SIGLIP2_TORCH_ROOT}/include/torch/csrc/api/include")
  target_link_libraries(siglip2_torch INTERFACE siglip2_torch_cpu siglip2_c10)
  target_link_options(siglip2_torch INTERFACE "-Wl,-rpath,${SIGLIP2_TORCH_ROOT}/lib")
  target_compile_definitions(siglip2_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
endif()

# NCCL: the header must match the NCCL the wheel was built against, which the wheel's companion
# pip package (nvidia-nccl-cu13) ships; a system nccl.h is the fallback.
set(SIGLIP2_HAVE_NCCL OFF)
if(SIGLIP2_HAVE_CUDA)
  find_path(SIGLIP2_NCCL_INCLUDE nccl.h
    HINTS "${SIGLIP2_TORCH_ROOT}/../nvidia/nccl/include" ${CUDAToolkit_INCLUDE_DIRS})
  if(SIGLIP2_NCCL_INCLUDE)
    set(SIGLIP2_HAVE_NCCL ON)
  else()
    message(WARNING "nccl.h not found: the NCCL backend is not built (pip install nvidia-nccl-cu13)")
  endif()
endif()

# Gloo: the wheel links Gloo statically but ships no Gloo headers. See docs/distributed.md for why
# Debian's libgloo-dev headers are safe for the narrow use made of them here.
set(SIGLIP2_HAVE_GLOO OFF)
if(NOT SIGLIP2_GLOO STREQUAL "OFF")
  find_path(SIGLIP2_GLOO_INCLUDE gloo/rendezvous/store.h)
  if(SIGLIP2_GLOO_INCLUDE)
    set(SIGLIP2_HAVE_GLOO ON)
    # Only a non-default prefix (a carried folder) needs adding; /usr/include must not be repeated.
    if(SIGLIP2_GLOO_INCLUDE IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      set(SIGLIP2_GLOO_INCLUDE_FLAGS "")
    else()
      set(SIGLIP2_GLOO_INCLUDE_FLAGS "${SIGLIP2_GLOO_INCLUDE}")
    endif()
  elseif(SIGLIP2_GLOO STREQUAL "ON")
    message(FATAL_ERROR "SIGLIP2_GLOO=ON but no Gloo headers were found (apt-get install libgloo-dev)")
  endif()
endif()
