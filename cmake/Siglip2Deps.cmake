# Small dependencies of the training core, found by path so that a GPU host without Debian's
# packages can point CMAKE_PREFIX_PATH at a carried folder holding their headers and libraries.
find_package(Threads REQUIRED)

# Include directories that are already the compiler's own (/usr/include) must not be repeated as
# -isystem: that breaks #include_next in the C++ standard headers.
function(siglip2_add_includes target)
  foreach(_dir ${ARGN})
    if(NOT _dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      target_include_directories(${target} SYSTEM INTERFACE ${_dir})
    endif()
  endforeach()
endfunction()

macro(siglip2_require_header var header what)
  find_path(${var} ${header})
  if(NOT ${var})
    message(FATAL_ERROR "${what} not found (${header}); run scripts/setup.sh or add its prefix to CMAKE_PREFIX_PATH")
  endif()
endmacro()

siglip2_require_header(SIGLIP2_YAML_INCLUDE yaml-cpp/yaml.h "yaml-cpp")
find_library(SIGLIP2_YAML_LIB NAMES libyaml-cpp.a yaml-cpp)
if(NOT SIGLIP2_YAML_LIB)
  message(FATAL_ERROR "yaml-cpp library not found; run scripts/setup.sh")
endif()
add_library(siglip2_yaml INTERFACE)
siglip2_add_includes(siglip2_yaml ${SIGLIP2_YAML_INCLUDE})
target_link_libraries(siglip2_yaml INTERFACE ${SIGLIP2_YAML_LIB})

siglip2_require_header(SIGLIP2_JSON_INCLUDE nlohmann/json.hpp "nlohmann-json")
siglip2_require_header(SIGLIP2_CLI11_INCLUDE CLI/CLI.hpp "CLI11")
siglip2_require_header(SIGLIP2_FMT_INCLUDE fmt/format.h "fmt")
siglip2_require_header(SIGLIP2_SPDLOG_INCLUDE spdlog/spdlog.h "spdlog")

# LibTorch ships its own fmt (12.x) headers, and they come first on the include path of anything
# that includes LibTorch. Debian's spdlog is built for Debian's fmt 9, so spdlog is confined to one
# target (siglip2_log) that never sees the LibTorch include directories. fmt puts each major
# version in its own inline namespace (fmt::v9, fmt::v12), so both can live in one binary;
# both are used header-only.
add_library(siglip2_fmt INTERFACE)
siglip2_add_includes(siglip2_fmt ${SIGLIP2_FMT_INCLUDE} ${SIGLIP2_JSON_INCLUDE} ${SIGLIP2_CLI11_INCLUDE})
target_compile_definitions(siglip2_fmt INTERFACE FMT_HEADER_ONLY=1)
target_link_libraries(siglip2_fmt INTERFACE Threads::Threads)

add_library(siglip2_spdlog INTERFACE)
siglip2_add_includes(siglip2_spdlog ${SIGLIP2_SPDLOG_INCLUDE} ${SIGLIP2_FMT_INCLUDE})
target_compile_definitions(siglip2_spdlog INTERFACE SPDLOG_FMT_EXTERNAL=1 FMT_HEADER_ONLY=1)
target_link_libraries(siglip2_spdlog INTERFACE Threads::Threads)

# Optional libraries of the data pipeline (image decoding, tar streaming, tokenizer). Each is
# required when its option is ON, so a missing package is reported at configure time; turn the
# option OFF to build the training core without it (e.g. on a GPU host with only LibTorch).
if(SIGLIP2_WITH_OPENCV)
  find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs)
  if(NOT OpenCV_FOUND)
    message(FATAL_ERROR "OpenCV not found (apt-get install libopencv-dev), or configure with -DSIGLIP2_WITH_OPENCV=OFF")
  endif()
  add_library(siglip2_opencv INTERFACE)
  target_include_directories(siglip2_opencv SYSTEM INTERFACE ${OpenCV_INCLUDE_DIRS})
  target_link_libraries(siglip2_opencv INTERFACE opencv_core opencv_imgproc opencv_imgcodecs)
endif()
# siglip2_optional_library(TARGET OPTION HEADER LIBRARY WHAT APT_PACKAGE): when OPTION is ON, finds the header
# and the library (an error naming the Debian package and the option otherwise) as the INTERFACE target TARGET.
function(siglip2_optional_library target option header library what package)
  if(NOT ${option})
    return()
  endif()
  find_path(${target}_INCLUDE ${header})
  find_library(${target}_LIB ${library})
  if(NOT ${target}_INCLUDE OR NOT ${target}_LIB)
    message(FATAL_ERROR "${what} not found (apt-get install ${package}), or configure with -D${option}=OFF")
  endif()
  add_library(${target} INTERFACE)
  siglip2_add_includes(${target} ${${target}_INCLUDE})
  target_link_libraries(${target} INTERFACE ${${target}_LIB})
endfunction()
siglip2_optional_library(siglip2_archive SIGLIP2_WITH_ARCHIVE archive.h archive "libarchive" libarchive-dev)
siglip2_optional_library(siglip2_curl SIGLIP2_WITH_CURL curl/curl.h curl "libcurl" libcurl4-openssl-dev)
siglip2_optional_library(siglip2_sentencepiece SIGLIP2_WITH_SENTENCEPIECE sentencepiece_processor.h sentencepiece
                         "sentencepiece" libsentencepiece-dev)
