/* Forced include (-include) for the netkit_faulty build of lib/: the system
 * headers come first, with their real declarations (and any fortified
 * inline versions) under the real names, then every socket and I/O call the
 * library makes is renamed to its nkt_sys_ wrapper in nkt_fault.c. Only the
 * library's own calls are renamed: the tests and their raw peers are
 * compiled without this header and reach the C library directly. */
#ifndef NKT_FAULT_RENAME_H
#define NKT_FAULT_RENAME_H

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#endif

#include "nkt_fault.h"

#define send nkt_sys_send
#define sendto nkt_sys_sendto
#define sendmsg nkt_sys_sendmsg
#define sendmmsg nkt_sys_sendmmsg
#define recv nkt_sys_recv
#define recvfrom nkt_sys_recvfrom
#define recvmsg nkt_sys_recvmsg
#define recvmmsg nkt_sys_recvmmsg
#define accept nkt_sys_accept
#define accept4 nkt_sys_accept4
#define writev nkt_sys_writev
#define readv nkt_sys_readv
#define read nkt_sys_read
#define write nkt_sys_write
#define socket nkt_sys_socket
#define connect nkt_sys_connect
#define poll nkt_sys_poll
#define setsockopt nkt_sys_setsockopt
#define bind nkt_sys_bind
#define listen nkt_sys_listen
#define shutdown nkt_sys_shutdown
#ifdef __linux__
#define epoll_wait nkt_sys_epoll_wait
#endif

#endif
