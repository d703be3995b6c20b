/**
 * @file netkit.h
 * @brief libnetkit: TCP servers and clients, UDP endpoints and rooms on one
 * small event loop. Include this one header.
 */
#ifndef NETKIT_H
#define NETKIT_H

#include "netkit/version.h"
#include "netkit/error.h"
#include "netkit/alloc.h"
#include "netkit/addr.h"
#include "netkit/loop.h"
#include "netkit/frame.h"
#include "netkit/tcp.h"
#include "netkit/udp.h"
#include "netkit/room.h"

#endif
