/* Timers: a binary min-heap ordered by (deadline, start order).
 *
 * The heap is intrusive (each timer carries its node, as in libuv's
 * heap-inl.h) rather than an array of pointers: a timer embedded in a
 * connection can then be started without allocating, so nk__timer_start()
 * cannot fail. Insert and remove walk one root-to-leaf path: O(log n). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/error.h"

#include "alloc.h"
#include "loop_impl.h"

#define TIMER_OF(n) \
    ((nk_timer *)(void *)((char *)(n) - offsetof(nk_timer, node)))

static bool less(const struct nk__heap_node *a, const struct nk__heap_node *b)
{
    const nk_timer *x = TIMER_OF(a);
    const nk_timer *y = TIMER_OF(b);
    if (x->deadline != y->deadline)
        return x->deadline < y->deadline;
    return x->seq < y->seq;
}

/* Swap a node with its child, fixing every link around them. */
static void node_swap(nk_loop *loop, struct nk__heap_node *parent,
                      struct nk__heap_node *child)
{
    struct nk__heap_node *sibling;
    struct nk__heap_node t = *parent;
    *parent = *child;
    *child = t;

    parent->parent = child;
    if (child->left == child) {
        child->left = parent;
        sibling = child->right;
    } else {
        child->right = parent;
        sibling = child->left;
    }
    if (sibling)
        sibling->parent = child;
    if (parent->left)
        parent->left->parent = parent;
    if (parent->right)
        parent->right->parent = parent;
    if (!child->parent)
        loop->heap_min = child;
    else if (child->parent->left == parent)
        child->parent->left = child;
    else
        child->parent->right = child;
}

/* The link that holds (or will hold) the node at 1-based position pos. */
static struct nk__heap_node **path_to(nk_loop *loop, size_t pos,
                                      struct nk__heap_node **parent)
{
    size_t path = 0;
    unsigned k = 0;
    for (size_t n = pos; n >= 2; n /= 2, k++)
        path = (path << 1) | (n & 1);
    struct nk__heap_node **link = &loop->heap_min;
    *parent = NULL;
    while (k-- > 0) {
        *parent = *link;
        link = (path & 1) ? &(*link)->right : &(*link)->left;
        path >>= 1;
    }
    return link;
}

static void heap_insert(nk_loop *loop, struct nk__heap_node *node)
{
    struct nk__heap_node *parent;
    struct nk__heap_node **link = path_to(loop, loop->heap_len + 1, &parent);
    node->left = node->right = NULL;
    node->parent = parent;
    *link = node;
    loop->heap_len++;
    while (node->parent && less(node, node->parent))
        node_swap(loop, node->parent, node);
}

static void heap_remove(nk_loop *loop, struct nk__heap_node *node)
{
    struct nk__heap_node *unused;
    struct nk__heap_node **link = path_to(loop, loop->heap_len, &unused);
    struct nk__heap_node *last = *link;
    *link = NULL;
    loop->heap_len--;
    if (last == node) {
        if (loop->heap_min == node)
            loop->heap_min = NULL;
        return;
    }
    /* Put the last node in the removed one's place, then restore order. */
    last->left = node->left;
    last->right = node->right;
    last->parent = node->parent;
    if (last->left)
        last->left->parent = last;
    if (last->right)
        last->right->parent = last;
    if (!node->parent)
        loop->heap_min = last;
    else if (node->parent->left == node)
        node->parent->left = last;
    else
        node->parent->right = last;
    for (;;) {
        struct nk__heap_node *smallest = last;
        if (last->left && less(last->left, smallest))
            smallest = last->left;
        if (last->right && less(last->right, smallest))
            smallest = last->right;
        if (smallest == last)
            break;
        node_swap(loop, last, smallest);
    }
    while (last->parent && less(last, last->parent))
        node_swap(loop, last->parent, last);
}

/* ---- internal API -------------------------------------------------- */

void nk__timer_init(nk_timer *t, nk_loop *loop, nk_timer_cb cb, void *user)
{
    t->loop = loop;
    t->deadline = 0;
    t->repeat = 0;
    t->seq = 0;
    t->heap_index = SIZE_MAX;
    t->node.left = t->node.right = t->node.parent = NULL;
    t->cb = cb;
    t->user = user;
    t->allocated = false;
}

/* heap_index is IN_HEAP while queued, FIRED for a public one-shot that
 * fired (still the application's handle: it keeps nk_loop_free() busy until
 * stopped or re-armed), SIZE_MAX otherwise; a zeroed timer (0) also reads
 * as stopped, so stopping one never touches the heap. */
#define IN_HEAP 1
#define FIRED 2

bool nk__timer_active(const nk_timer *t)
{
    return t->heap_index == IN_HEAP;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Leave the FIRED state (re-armed or stopped). */
static void unfire(nk_timer *t)
{
    if (t->heap_index == FIRED) {
        t->loop->fired_timers--;
        t->heap_index = SIZE_MAX;
    }
}

void nk__timer_start(nk_timer *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
    nk_loop *loop = t->loop;
    if (nk__timer_active(t))
        heap_remove(loop, &t->node);
    unfire(t);
    /* Outside nk_loop_run() the cached time may be old, and inside it the
     * clock is not read after a wait with no timer (now_stale): a timer
     * measured from an old time could fire early. Callbacks otherwise use
     * the iteration's time. */
    if (!loop->running || loop->now_stale)
        nk__loop_read_clock(loop);
    t->deadline = add_sat(loop->now, timeout_ms);
    t->repeat = repeat_ms;
    t->seq = loop->timer_seq++;
    t->heap_index = IN_HEAP;
    heap_insert(loop, &t->node);
}

void nk__timer_stop(nk_timer *t)
{
    unfire(t);
    if (!nk__timer_active(t))
        return;
    heap_remove(t->loop, &t->node);
    t->heap_index = SIZE_MAX;
}

/* Fires the due timers in (deadline, seq) order. A timer started or
 * re-armed during this pass has seq >= limit and waits for the next
 * iteration, so a timer re-armed at 0 cannot keep the loop from polling. */
size_t nk__timers_run(nk_loop *loop)
{
    uint64_t limit = loop->timer_seq;
    size_t fired = 0;
    while (loop->heap_min) {
        nk_timer *t = TIMER_OF(loop->heap_min);
        if (t->deadline > loop->now || t->seq >= limit)
            break;
        heap_remove(loop, &t->node);
        if (t->repeat) {
            /* Re-inserted before the callback, which may stop or restart. */
            t->deadline = add_sat(loop->now, t->repeat);
            t->seq = loop->timer_seq++;
            heap_insert(loop, &t->node);
        } else if (t->allocated) {
            /* Embedded timers belong to an object that keeps the loop
             * busy by other means. */
            t->heap_index = FIRED;
            loop->fired_timers++;
        } else {
            t->heap_index = SIZE_MAX;
        }
        fired++;
        t->cb(t, t->user);
    }
    return fired;
}

/* ---- public API ---------------------------------------------------- */

int nk_timer_start(nk_loop *loop, uint64_t timeout_ms, uint64_t repeat_ms,
                   nk_timer_cb cb, void *user, nk_timer **out)
{
    if (!loop || !cb || !out)
        return NK_EINVAL;
    nk_timer *t = nk__malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    nk__timer_init(t, loop, cb, user);
    t->allocated = true;
    nk__timer_start(t, timeout_ms, repeat_ms);
    *out = t;
    return 0;
}

int nk_timer_restart(nk_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms)
{
    if (!timer)
        return NK_EINVAL;
    nk__timer_start(timer, timeout_ms, repeat_ms);
    return 0;
}

void nk_timer_stop(nk_timer *timer)
{
    if (!timer)
        return;
    nk__timer_stop(timer);
    if (timer->allocated)
        nk__free(timer);
}
