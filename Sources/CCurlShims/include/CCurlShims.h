#ifndef HARROW_CCURLSHIMS_H
#define HARROW_CCURLSHIMS_H

/*
 * Typed wrappers for libcurl's variadic curl_easy_setopt and curl_easy_getinfo, which Swift
 * cannot call. One wrapper per argument type; each checks that the option (or info) really takes
 * that type and returns CURLE_BAD_FUNCTION_ARGUMENT otherwise, so a wrong pairing is an error
 * instead of libcurl reading a garbage vararg.
 */

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options of type long (CURLOPTTYPE_LONG, CURLOPTTYPE_VALUES). */
CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);

/** Options of type char * (CURLOPTTYPE_STRINGPOINT). libcurl copies the string. */
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);

/** Options of type void * / char * buffers (CURLOPTTYPE_OBJECTPOINT, CURLOPTTYPE_CBPOINT). Not copied. */
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);

/** Options of type struct curl_slist * (CURLOPTTYPE_SLISTPOINT). The list must outlive the transfer. */
CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

/** Options of type curl_off_t (CURLOPTTYPE_OFF_T). */
CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);

/** CURLOPT_READFUNCTION. */
CURLcode ccurl_easy_setopt_read_callback(CURL *handle, CURLoption option, curl_read_callback callback);

/** CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION (same signature). */
CURLcode ccurl_easy_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback callback);

/** CURLOPT_XFERINFOFUNCTION. */
CURLcode ccurl_easy_setopt_xferinfo_callback(CURL *handle, CURLoption option, curl_xferinfo_callback callback);

/** Infos of type long (CURLINFO_LONG), such as CURLINFO_RESPONSE_CODE. */
CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);

#ifdef __cplusplus
}
#endif

#endif
