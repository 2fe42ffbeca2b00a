#ifndef HARROW_CHIREDIS_SHIM_H
#define HARROW_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#endif
