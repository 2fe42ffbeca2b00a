#ifndef HARROW_CCURL_SHIM_H
#define HARROW_CCURL_SHIM_H
#include <curl/curl.h>
#endif
