/* stb_end.h: closes the block stb_begin.h opened (see there). No include guard. */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
