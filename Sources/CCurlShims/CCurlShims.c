#include "CCurlShims.h"

/* Option numbers encode their argument type as a base (curl.h, CURLOPTTYPE_*). */
static int option_in(CURLoption option, long low, long high) {
    return (long)option >= low && (long)option < high;
}

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    if (!option_in(option, CURLOPTTYPE_LONG, CURLOPTTYPE_OBJECTPOINT)) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, value);
}

CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    if (!option_in(option, CURLOPTTYPE_OBJECTPOINT, CURLOPTTYPE_FUNCTIONPOINT)) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, value);
}

CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    if (!option_in(option, CURLOPTTYPE_OBJECTPOINT, CURLOPTTYPE_FUNCTIONPOINT)) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, value);
}

CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    if (!option_in(option, CURLOPTTYPE_OBJECTPOINT, CURLOPTTYPE_FUNCTIONPOINT)) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, value);
}

CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    if (!option_in(option, CURLOPTTYPE_OFF_T, CURLOPTTYPE_BLOB)) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, value);
}

CURLcode ccurl_easy_setopt_read_callback(CURL *handle, CURLoption option, curl_read_callback callback) {
    if (option != CURLOPT_READFUNCTION) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, callback);
}

CURLcode ccurl_easy_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback callback) {
    if (option != CURLOPT_WRITEFUNCTION && option != CURLOPT_HEADERFUNCTION) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, callback);
}

CURLcode ccurl_easy_setopt_xferinfo_callback(CURL *handle, CURLoption option, curl_xferinfo_callback callback) {
    if (option != CURLOPT_XFERINFOFUNCTION) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_setopt(handle, option, callback);
}

CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    if ((info & CURLINFO_TYPEMASK) != CURLINFO_LONG) {
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    return curl_easy_getinfo(handle, info, value);
}
