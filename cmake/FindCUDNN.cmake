# Finds cuDNN (header + library) and the header-only cuDNN C++ frontend for the runner's fused
# prefill attention. Neither is required: without them the runner keeps its own kernel.
#
# cuDNN: header and library are taken from the same place, the first of
#   -DCUDNN_ROOT / $CUDNN_ROOT (<root>/include, <root>/lib or lib64),
#   the CUDA toolkit (some toolkits carry cuDNN),
#   the Python environment's nvidia/cudnn (pip nvidia-cudnn-cu13, or PyTorch's; the library may
#   be libcudnn.so.9 with no unversioned link),
#   the system (Debian's libcudnn9-dev-cuda-*).
# Frontend (cudnn_frontend.h): -DCUDNN_FRONTEND_ROOT / $CUDNN_FRONTEND_ROOT, the copy
#   scripts/vendor_deps.sh makes in ${SLIDESPARSE_DEPS_DIR}/cudnn_frontend, then the Python
#   environment (pip nvidia-cudnn-frontend puts its headers in site-packages/include).
#
# Sets CUDNN_FOUND, CUDNN_VERSION, CUDNN_FRONTEND_FOUND, CUDNN_FRONTEND_VERSION and defines
# CUDNN::cudnn (library + cudnn.h) and CUDNN::frontend (headers) when found.

set(_cudnn_site "")
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import site,sys; print(';'.join(site.getsitepackages()+[site.getusersitepackages()]))"
    OUTPUT_VARIABLE _cudnn_site OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()

# ---- cuDNN: (include dir, library dir) pairs, first complete one wins --------------------
set(_cudnn_pairs "")
foreach(_root ${CUDNN_ROOT} $ENV{CUDNN_ROOT})
  list(APPEND _cudnn_pairs "${_root}/include|${_root}/lib64" "${_root}/include|${_root}/lib")
endforeach()
if(CUDAToolkit_INCLUDE_DIRS AND CUDAToolkit_LIBRARY_DIR)
  list(GET CUDAToolkit_INCLUDE_DIRS 0 _cuda_include)
  list(APPEND _cudnn_pairs "${_cuda_include}|${CUDAToolkit_LIBRARY_DIR}")
endif()
foreach(_dir ${_cudnn_site})
  list(APPEND _cudnn_pairs "${_dir}/nvidia/cudnn/include|${_dir}/nvidia/cudnn/lib")
endforeach()
list(APPEND _cudnn_pairs "/usr/include|/usr/lib/x86_64-linux-gnu" "/usr/include|/usr/lib/aarch64-linux-gnu")

set(CUDNN_INCLUDE_DIR "")
set(CUDNN_LIBRARY "")
foreach(_pair ${_cudnn_pairs})
  string(REPLACE "|" ";" _pair "${_pair}")
  list(GET _pair 0 _inc)
  list(GET _pair 1 _lib)
  if(NOT EXISTS "${_inc}/cudnn.h" OR NOT EXISTS "${_inc}/cudnn_version.h")
    continue()
  endif()
  foreach(_name libcudnn.so libcudnn.so.9)
    if(EXISTS "${_lib}/${_name}")
      set(CUDNN_INCLUDE_DIR "${_inc}")
      set(CUDNN_LIBRARY "${_lib}/${_name}")
      break()
    endif()
  endforeach()
  if(CUDNN_LIBRARY)
    break()
  endif()
endforeach()

set(CUDNN_FOUND OFF)
if(CUDNN_LIBRARY)
  file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _ver REGEX "#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
  string(REGEX REPLACE ".*CUDNN_MAJOR ([0-9]+).*" "\\1" _major "${_ver}")
  string(REGEX REPLACE ".*CUDNN_MINOR ([0-9]+).*" "\\1" _minor "${_ver}")
  string(REGEX REPLACE ".*CUDNN_PATCHLEVEL ([0-9]+).*" "\\1" _patch "${_ver}")
  set(CUDNN_VERSION "${_major}.${_minor}.${_patch}")
  # The fused attention's ragged (packed) layout needs cuDNN 9.
  if(_major GREATER_EQUAL 9)
    set(CUDNN_FOUND ON)
  else()
    message(STATUS "slidesparse: cuDNN ${CUDNN_VERSION} at ${CUDNN_LIBRARY} is older than 9: not used")
  endif()
endif()

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn SHARED IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    IMPORTED_NO_SONAME FALSE
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
  get_filename_component(_cudnn_libdir "${CUDNN_LIBRARY}" DIRECTORY)
  # libcudnn.so.9 loads its engine libraries from its own folder.
  set_property(TARGET CUDNN::cudnn PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_cudnn_libdir}")
endif()

# ---- the C++ frontend (header-only) ------------------------------------------------------
set(_frontend_dirs "")
foreach(_root ${CUDNN_FRONTEND_ROOT} $ENV{CUDNN_FRONTEND_ROOT})
  list(APPEND _frontend_dirs "${_root}/include" "${_root}")
endforeach()
list(APPEND _frontend_dirs "${SLIDESPARSE_DEPS_DIR}/cudnn_frontend/include")
foreach(_dir ${_cudnn_site})
  list(APPEND _frontend_dirs "${_dir}/include" "${_dir}/cudnn/include")
endforeach()

set(CUDNN_FRONTEND_INCLUDE_DIR "")
foreach(_dir ${_frontend_dirs})
  if(EXISTS "${_dir}/cudnn_frontend.h" AND EXISTS "${_dir}/cudnn_frontend_version.h")
    set(CUDNN_FRONTEND_INCLUDE_DIR "${_dir}")
    break()
  endif()
endforeach()

set(CUDNN_FRONTEND_FOUND OFF)
if(CUDNN_FRONTEND_INCLUDE_DIR)
  file(STRINGS "${CUDNN_FRONTEND_INCLUDE_DIR}/cudnn_frontend_version.h" _ver
       REGEX "#define CUDNN_FRONTEND_(MAJOR|MINOR|PATCH)_VERSION ")
  string(REGEX REPLACE ".*MAJOR_VERSION ([0-9]+).*" "\\1" _major "${_ver}")
  string(REGEX REPLACE ".*MINOR_VERSION ([0-9]+).*" "\\1" _minor "${_ver}")
  string(REGEX REPLACE ".*PATCH_VERSION ([0-9]+).*" "\\1" _patch "${_ver}")
  set(CUDNN_FRONTEND_VERSION "${_major}.${_minor}.${_patch}")
  set(CUDNN_FRONTEND_FOUND ON)
  if(NOT TARGET CUDNN::frontend)
    add_library(CUDNN::frontend INTERFACE IMPORTED)
    set_target_properties(CUDNN::frontend PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_FRONTEND_INCLUDE_DIR}")
  endif()
endif()
