/* stb_begin.h / stb_end.h: around an stb header (a single-file library from Debian's libstb-dev,
 * compiled into the file that includes it), turn off the warnings its code gives under our
 * flags, and only for it:
 *
 *     #include "base/stb_begin.h"
 *     #define STB_IMAGE_WRITE_STATIC
 *     #define STB_IMAGE_WRITE_IMPLEMENTATION
 *     #include <stb/stb_image_write.h>
 *     #include "base/stb_end.h"
 *
 * No include guard: each use opens (and stb_end.h closes) one block.
 */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wconversion"
#endif
