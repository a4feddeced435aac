# Finds the CUTLASS headers for the sm_90a sparse GEMM. Sets SLIDESPARSE_CUTLASS_INCLUDE_DIRS
# (CUTLASS's include/ and its tools/util/include/) or leaves it empty. Accepted layouts of a
# root folder:
#   <root>/include + <root>/tools/util/include    a CUTLASS checkout, or the pip package
#                                                  nvidia-cutlass's cutlass_library/source
#   <root>/include + <root>/util_include          the copy scripts/vendor_deps.sh makes
# Roots tried: SLIDESPARSE_CUTLASS_DIR, the pip package (asked from python3), then
# third_party_headers/cutlass. The backend also needs sm_90a among CMAKE_CUDA_ARCHITECTURES.
set(SLIDESPARSE_CUTLASS_DIR "" CACHE PATH "CUTLASS root (include/ and tools/util/include/ or util_include/)")
set(SLIDESPARSE_CUTLASS_INCLUDE_DIRS "")

set(_cutlass_roots ${SLIDESPARSE_CUTLASS_DIR})
if(NOT SLIDESPARSE_CUTLASS_DIR)
  find_program(_cutlass_python NAMES python3 python)
  if(_cutlass_python)
    execute_process(
      COMMAND ${_cutlass_python} -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__))"
      OUTPUT_VARIABLE _cutlass_py_dir RESULT_VARIABLE _cutlass_py_result
      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_cutlass_py_result EQUAL 0 AND _cutlass_py_dir)
      list(APPEND _cutlass_roots ${_cutlass_py_dir}/source)
    endif()
  endif()
  list(APPEND _cutlass_roots ${CMAKE_CURRENT_SOURCE_DIR}/third_party_headers/cutlass)
endif()

foreach(_root ${_cutlass_roots})
  if(NOT EXISTS ${_root}/include/cutlass/cutlass.h)
    continue()
  endif()
  foreach(_util ${_root}/tools/util/include ${_root}/util_include)
    if(EXISTS ${_util}/cutlass/util/packed_stride.hpp)
      set(SLIDESPARSE_CUTLASS_INCLUDE_DIRS ${_root}/include ${_util})
      break()
    endif()
  endforeach()
  if(SLIDESPARSE_CUTLASS_INCLUDE_DIRS)
    break()
  endif()
endforeach()

set(_cutlass_has_90a OFF)
foreach(_arch ${CMAKE_CUDA_ARCHITECTURES})
  if(_arch MATCHES "^90a")
    set(_cutlass_has_90a ON)
  endif()
endforeach()

if(NOT SLIDESPARSE_CUTLASS_INCLUDE_DIRS)
  message(STATUS "slidesparse: CUTLASS headers not found (pip install nvidia-cutlass, or set "
                 "SLIDESPARSE_CUTLASS_DIR): the CUTLASS sparse GEMM is not built")
elseif(NOT _cutlass_has_90a)
  message(STATUS "slidesparse: sm_90a is not among CMAKE_CUDA_ARCHITECTURES "
                 "(${CMAKE_CUDA_ARCHITECTURES}): the CUTLASS sparse GEMM is not built")
  set(SLIDESPARSE_CUTLASS_INCLUDE_DIRS "")
else()
  message(STATUS "slidesparse: CUTLASS sparse GEMM from ${SLIDESPARSE_CUTLASS_INCLUDE_DIRS}")
endif()
