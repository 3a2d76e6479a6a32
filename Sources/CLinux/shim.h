// Linux system headers that the Glibc Swift module does not export. Empty elsewhere.
#ifndef AESCHAT_CLINUX_SHIM_H
#define AESCHAT_CLINUX_SHIM_H
#ifdef __linux__
#include <sys/epoll.h>
#include <malloc.h>
#endif
#endif
