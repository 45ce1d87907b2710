#!/bin/sh
# gnuplot_log.sh: gnuplot, with every command it is sent appended to $FTLUA_TEST_GP_LOG, so that
# tests can compare what ft.plot sent (the data, the labels) with an independent computation.
# Use: FTLUA_GNUPLOT=tests/lua/gnuplot_log.sh FTLUA_TEST_GP_LOG=/tmp/log ./ftlua ...
tee -a "${FTLUA_TEST_GP_LOG:?set FTLUA_TEST_GP_LOG}" | gnuplot "$@"
