# Finds cuSPARSELt: from -DCUSPARSELT_ROOT, $CUSPARSELT_ROOT, or the Python
# environment's nvidia packages (nvidia-cusparselt-cu13 installs into
# site-packages/nvidia/cu13, the one PyTorch pulls in into nvidia/cusparselt).
# Defines CUSPARSELT::cusparselt.
set(_hints ${CUSPARSELT_ROOT} $ENV{CUSPARSELT_ROOT})
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import site,sys; print(';'.join(site.getsitepackages()+[site.getusersitepackages()]))"
    OUTPUT_VARIABLE _site OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  foreach(_dir ${_site})
    list(APPEND _hints ${_dir}/nvidia/cusparselt ${_dir}/nvidia/cu13)
  endforeach()
endif()
find_path(CUSPARSELT_INCLUDE_DIR cusparseLt.h HINTS ${_hints} PATH_SUFFIXES include)
find_library(CUSPARSELT_LIBRARY NAMES cusparseLt libcusparseLt.so.0 HINTS ${_hints} PATH_SUFFIXES lib lib64)
if(CUSPARSELT_INCLUDE_DIR AND EXISTS "${CUSPARSELT_INCLUDE_DIR}/cusparseLt.h")
  file(STRINGS "${CUSPARSELT_INCLUDE_DIR}/cusparseLt.h" _ver REGEX "#define CUSPARSELT_VER_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*" "\\1" _major "${_ver}")
  string(REGEX REPLACE ".*MINOR ([0-9]+).*" "\\1" _minor "${_ver}")
  string(REGEX REPLACE ".*PATCH ([0-9]+).*" "\\1" _patch "${_ver}")
  set(CUSPARSELT_VERSION "${_major}.${_minor}.${_patch}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUSPARSELT
  REQUIRED_VARS CUSPARSELT_LIBRARY CUSPARSELT_INCLUDE_DIR
  VERSION_VAR CUSPARSELT_VERSION
  FAIL_MESSAGE "cuSPARSELt not found: pip install nvidia-cusparselt-cu13, or pass -DCUSPARSELT_ROOT=<dir with include/ and lib/>")
if(CUSPARSELT_FOUND AND NOT TARGET CUSPARSELT::cusparselt)
  add_library(CUSPARSELT::cusparselt SHARED IMPORTED)
  set_target_properties(CUSPARSELT::cusparselt PROPERTIES
    IMPORTED_LOCATION "${CUSPARSELT_LIBRARY}"
    IMPORTED_NO_SONAME FALSE
    INTERFACE_INCLUDE_DIRECTORIES "${CUSPARSELT_INCLUDE_DIR}")
  get_filename_component(_libdir "${CUSPARSELT_LIBRARY}" DIRECTORY)
  set_property(TARGET CUSPARSELT::cusparselt PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_libdir}")
endif()
