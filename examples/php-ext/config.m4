dnl The ssed extension: ssed_publish() and friends over libssed's C API.
dnl   phpize && ./configure --with-ssed=/path/to/ssed && make
dnl --with-ssed names the ssed source tree (include/ssed.h); the library is taken from its
dnl target/release, or from $SSED_LIBDIR when set (the build records it as an rpath).

PHP_ARG_WITH([ssed],
  [for ssed support],
  [AS_HELP_STRING([--with-ssed=DIR], [ssed source tree, with include/ssed.h and target/release/libssed.so])])

if test "$PHP_SSED" != "no"; then
  if test "$PHP_SSED" = "yes"; then
    AC_MSG_ERROR([--with-ssed needs the path of the ssed source tree])
  fi
  SSED_INCDIR="$PHP_SSED/include"
  SSED_LIBDIR="${SSED_LIBDIR:-$PHP_SSED/target/release}"
  AC_MSG_CHECKING([for ssed.h and libssed])
  if test ! -f "$SSED_INCDIR/ssed.h"; then
    AC_MSG_ERROR([$SSED_INCDIR/ssed.h not found])
  fi
  if test ! -f "$SSED_LIBDIR/libssed.so"; then
    AC_MSG_ERROR([$SSED_LIBDIR/libssed.so not found: run cargo build --release])
  fi
  AC_MSG_RESULT([$SSED_LIBDIR])

  PHP_ADD_INCLUDE([$SSED_INCDIR])
  PHP_ADD_LIBRARY_WITH_PATH([ssed], [$SSED_LIBDIR], [SSED_SHARED_LIBADD])
  PHP_SUBST([SSED_SHARED_LIBADD])
  PHP_NEW_EXTENSION([ssed], [ssed_ext.c], [$ext_shared])
fi
