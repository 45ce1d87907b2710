// ft_dist.cpp: the shim over c10d behind ft_dist.h. A TCPStore does the rendezvous, a
// ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA) does the collectives. We build no transport.
//
// Portability: compiles against Debian's libtorch 1.13 (ProcessGroupGloo derives from
// ProcessGroup) and 2.x (it derives from Backend); we only call the methods both have, through
// the concrete class. Gloo needs gloo's headers (Debian: libgloo-dev) and USE_C10D_GLOO; NCCL
// needs a CUDA libtorch and nccl.h. A build without them still links: new_ft_dist says so.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp> // Work, ReduceOp, the options
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

// FT_NO_GLOO / FT_NO_NCCL (make CPPFLAGS=...) leave a backend out even where its headers are.
#if __has_include(<gloo/config.h>) && !defined(FT_NO_GLOO)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define FT_HAVE_GLOO 1
#endif

#if defined(FT_WITH_CUDA) && !defined(FT_NO_NCCL) && __has_include(<nccl.h>) && \
    __has_include(<cuda_runtime_api.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define FT_HAVE_NCCL 1
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "torch/ft_dist.h"
#include "torch/ft_internal.hpp"

using ft_internal::fail_current;

// One group, whichever backend. `broken` is set once a collective failed: the peers may be
// gone, and tearing the group down could wait for them.
struct ft_dist {
    std::string addr;
    int port, rank, world;
    ft_dist_backend backend;
    std::chrono::milliseconds timeout;
    c10::intrusive_ptr<c10d::Store> store;
#ifdef FT_HAVE_GLOO
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef FT_HAVE_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    bool broken = false;
};

namespace {

// Run body; on a C++ exception, keep its message prefixed with where we were (rank, address).
template <class F> ft_status guard_dist(const ft_dist *d, const char *what, F &&body) noexcept {
    try {
        body();
        return FT_OK;
    } catch (...) {
        ft_status st = fail_current();
        char msg[1024];
        if (d)
            snprintf(msg, sizeof msg, "%s (rank %d of %d, master %s:%d): %s", what, d->rank,
                     d->world, d->addr.c_str(), d->port, ft_last_error());
        else
            snprintf(msg, sizeof msg, "%s: %s", what, ft_last_error());
        return ft_internal::set_error(st, msg);
    }
}

std::chrono::milliseconds ms(double s) {
    return std::chrono::milliseconds((long long)(s * 1000.0));
}

[[maybe_unused]] bool is_loopback(const std::string &a) {
    return a == "localhost" || a.rfind("127.", 0) == 0 || a == "::1";
}

// The collectives through the concrete class of either backend; waits for the work.
template <class Fn> void with_pg(ft_dist *d, Fn &&fn) {
#ifdef FT_HAVE_NCCL
    if (d->nccl) {
        fn(*d->nccl);
        return;
    }
#endif
#ifdef FT_HAVE_GLOO
    if (d->gloo) {
        fn(*d->gloo);
        return;
    }
#endif
    (void)d, (void)fn;
    throw std::runtime_error("no process group");
}

template <class Work> void wait(ft_dist *d, Work &&w) {
    try {
        w->wait(d->timeout);
    } catch (...) {
        d->broken = true;
        throw;
    }
}

c10d::ReduceOp reduce_op(int op) {
    switch (op) {
    case FT_DIST_MAX: return c10d::ReduceOp::MAX;
    case FT_DIST_MIN: return c10d::ReduceOp::MIN;
    default: return c10d::ReduceOp::SUM;
    }
}

// Consecutive tensors of one dtype and device, about max_bytes together.
struct bucket {
    std::vector<at::Tensor> ts;
    at::Tensor flat;
};

std::vector<bucket> make_buckets(ft_tensor *const *ts, int n, int64_t max_bytes) {
    std::vector<bucket> out;
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || !ts[i]->t.defined()) continue;
        const at::Tensor &t = ts[i]->t;
        bool fits = !out.empty() && bytes + t.nbytes() <= (size_t)max_bytes &&
                    out.back().ts[0].scalar_type() == t.scalar_type() &&
                    out.back().ts[0].device() == t.device();
        if (!fits) {
            out.emplace_back();
            bytes = 0;
        }
        out.back().ts.push_back(t);
        bytes += (int64_t)t.nbytes();
    }
    return out;
}

at::Tensor flatten(const std::vector<at::Tensor> &ts) {
    std::vector<at::Tensor> views;
    views.reserve(ts.size());
    for (const auto &t : ts) views.push_back(t.reshape({-1}));
    return at::cat(views);
}

// Writes flat back into the bucket's tensors, times scale.
void unflatten(const bucket &b, double scale) {
    int64_t off = 0;
    for (const auto &t : b.ts) {
        int64_t k = t.numel();
        at::Tensor part = b.flat.narrow(0, off, k).view(t.sizes());
        if (scale != 1.0)
            t.copy_(part * scale);
        else
            t.copy_(part);
        off += k;
    }
}

} // namespace

extern "C" {

int ft_dist_has_backend(ft_dist_backend b) noexcept {
#ifdef FT_HAVE_GLOO
    if (b == FT_DIST_GLOO) return 1;
#endif
#ifdef FT_HAVE_NCCL
    if (b == FT_DIST_NCCL) return 1;
#endif
    (void)b;
    return 0;
}

const char *ft_dist_backend_name(ft_dist_backend b) noexcept {
    return b == FT_DIST_NCCL ? "nccl" : "gloo";
}

ft_status new_ft_dist(const char *addr, int port, int rank, int world, ft_dist_backend backend,
                      int device, double timeout_s, ft_dist **out) noexcept {
    std::unique_ptr<ft_dist> d(new (std::nothrow) ft_dist());
    if (!d) return ft_internal::set_error(FT_ERR_OOM, "dist: out of memory");
    d->addr = addr ? addr : "";
    d->port = port;
    d->rank = rank;
    d->world = world;
    d->backend = backend;
    d->timeout = ms(timeout_s > 0 ? timeout_s : 1800);
    ft_status st = guard_dist(d.get(), "rendezvous", [&] {
        if (world < 1 || rank < 0 || rank >= world)
            throw std::invalid_argument("rank must be in [0, world size)");
        if (port < 0 || port > 65535) throw std::invalid_argument("port must be in [0, 65535]");
        if (!ft_dist_has_backend(backend))
            throw std::runtime_error(std::string("this build of ftlua has no ") +
                                     ft_dist_backend_name(backend) + " backend");
        // The store: rank 0 listens, everyone (rank 0 too) connects, retrying until the timeout.
        c10d::TCPStoreOptions o;
        o.port = (std::uint16_t)port;
        o.isServer = rank == 0;
        o.numWorkers = (std::size_t)world;
        o.waitWorkers = false; // the process group's own rendezvous waits for everyone
        o.timeout = d->timeout;
        try {
            d->store = c10::make_intrusive<c10d::TCPStore>(d->addr, o);
        } catch (const std::exception &e) {
            char msg[900];
            if (rank == 0)
                snprintf(msg, sizeof msg, "cannot serve the rendezvous on port %d (in use?): %s",
                         port, e.what());
            else
                snprintf(msg, sizeof msg, "cannot reach the master at %s:%d after %.0f s: %s",
                         d->addr.c_str(), port, timeout_s, e.what());
            throw std::runtime_error(msg);
        }
#ifdef FT_HAVE_NCCL
        if (backend == FT_DIST_NCCL) {
            at::globalContext().lazyInitCUDA();
            c10::cuda::set_device(
                (c10::DeviceIndex)(device >= 0 ? device : 0)); // NCCL's current device
            auto opts = c10d::ProcessGroupNCCL::Options::create();
            opts->timeout = d->timeout;
            d->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(d->store, rank, world, opts);
            return;
        }
#endif
        (void)device;
#ifdef FT_HAVE_GLOO
        auto opts = c10d::ProcessGroupGloo::Options::create(d->timeout);
        // Which interface Gloo binds: GLOO_SOCKET_IFNAME as torch does, the loopback for a
        // one-machine world, else the address this host's name resolves to.
        const char *ifname = getenv("GLOO_SOCKET_IFNAME");
        if (ifname && *ifname)
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        else if (is_loopback(d->addr))
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(d->addr));
        else
            opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        opts->threads = 2;
        d->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(d->store, rank, world, opts);
#endif
    });
    if (st != FT_OK) {
        // A group that never formed has nobody to wait for; the store's server thread is
        // joined by its destructor.
        return st;
    }
    *out = d.release();
    return FT_OK;
}

void free_ft_dist(ft_dist *d) noexcept {
    if (!d) return;
    if (d->broken) return; // see ft_dist.h: left to the process exit
    try {
        delete d;
    } catch (...) {}
}

int ft_dist_rank(const ft_dist *d) noexcept { return d->rank; }
int ft_dist_world(const ft_dist *d) noexcept { return d->world; }

ft_status ft_dist_all_reduce_mean(ft_dist *d, ft_tensor *const *ts, int n, double weight,
                                  int64_t bucket_bytes, double *total_weight) noexcept {
    return guard_dist(d, "all_reduce", [&] {
        at::NoGradGuard no_grad;
        if (bucket_bytes <= 0) bucket_bytes = 25 << 20;
        std::vector<bucket> bs = make_buckets(ts, n, bucket_bytes);
        // The weight rides as one more element of the first bucket (or alone when none).
        at::Tensor w = at::full(
            {1}, weight, bs.empty() ? at::TensorOptions(at::kDouble) : bs[0].ts[0].options());
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        for (size_t k = 0; k < bs.size() || (k == 0 && bs.empty()); k++) {
            std::vector<at::Tensor> one;
            if (bs.empty()) {
                one.push_back(w);
            } else {
                bs[k].flat = flatten(bs[k].ts);
                if (weight != 1.0) bs[k].flat.mul_(weight);
                if (k == 0) bs[k].flat = at::cat({bs[k].flat, w});
                one.push_back(bs[k].flat);
            }
            // Started as soon as filled: Gloo reduces bucket k while we flatten bucket k + 1.
            with_pg(d, [&](auto &pg) { works.push_back(pg.allreduce(one)); });
        }
        for (auto &wk : works) wait(d, wk);
        double total = bs.empty() ? w.item<double>()
                                  : bs[0].flat.narrow(0, bs[0].flat.numel() - 1, 1).item<double>();
        if (!(total > 0)) throw std::runtime_error("the weights add up to zero");
        for (size_t k = 0; k < bs.size(); k++) {
            if (k == 0) bs[k].flat = bs[k].flat.narrow(0, 0, bs[k].flat.numel() - 1);
            unflatten(bs[k], 1.0 / total);
        }
        if (total_weight) *total_weight = total;
    });
}

// ---------------------------------------------------------------- the overlapping reducer

struct ft_dist_reducer {
    struct rbucket {
        std::vector<int> params; // indices into ps
        at::Tensor flat;         // their gradients times the weight, end to end
        int pending = 0;         // gradients still to come this step
        c10::intrusive_ptr<c10d::Work> work;
    };
    size_t next = 0; // buckets go out in order, the same on every rank (c10d pairs collectives
                     // by their rank of issue)
    ft_dist *d = nullptr;
    std::vector<at::Tensor> ps;
    std::vector<unsigned> hooks;
    std::vector<int> bucket_of;
    std::vector<int64_t> offset_of;
    std::vector<char> got; // param i's gradient came this step
    std::vector<rbucket> buckets;
    double weight = 1;
    bool armed = false;
    std::mutex mu; // hooks of a multi-device graph run on several autograd threads

    // Autograd hands us param i's gradient (the sum over its uses) before .grad gets it.
    void on_grad(int i, const at::Tensor &g) {
        std::lock_guard<std::mutex> lock(mu);
        if (!armed || got[i]) return;
        at::NoGradGuard no_grad;
        rbucket &b = buckets[bucket_of[i]];
        at::Tensor slot = b.flat.narrow(0, offset_of[i], ps[i].numel());
        slot.copy_(g.reshape({-1}));
        if (weight != 1.0) slot.mul_(weight);
        got[i] = 1;
        --b.pending;
        while (next < buckets.size() && buckets[next].pending == 0) launch(buckets[next++]);
    }

    // Also called from a hook, inside autograd: its error names us as guard_dist would.
    void launch(rbucket &b) {
        std::vector<at::Tensor> one{b.flat};
        try {
            with_pg(d, [&](auto &pg) { b.work = pg.allreduce(one); });
        } catch (const std::exception &e) {
            d->broken = true;
            char msg[1024];
            snprintf(msg, sizeof msg, "all_reduce (rank %d of %d, master %s:%d): %s", d->rank,
                     d->world, d->addr.c_str(), d->port, e.what());
            throw std::runtime_error(msg);
        }
    }
};

ft_status new_ft_dist_reducer(ft_dist *d, ft_tensor *const *params, int n, int64_t bucket_bytes,
                              ft_dist_reducer **out) noexcept {
    std::unique_ptr<ft_dist_reducer> r(new (std::nothrow) ft_dist_reducer());
    if (!r) return ft_internal::set_error(FT_ERR_OOM, "dist: out of memory");
    ft_status st = guard_dist(d, "reducer", [&] {
        if (bucket_bytes <= 0) bucket_bytes = 25 << 20;
        r->d = d;
        for (int i = n - 1; i >= 0; i--) // backward's order: the last layers' gradients come first
            if (params[i] && params[i]->t.defined()) r->ps.push_back(params[i]->t);
        int64_t bytes = 0;
        for (size_t i = 0; i < r->ps.size(); i++) {
            const at::Tensor &p = r->ps[i];
            auto &bs = r->buckets;
            bool fits = !bs.empty() && bytes + (int64_t)p.nbytes() <= bucket_bytes &&
                        r->ps[bs.back().params[0]].scalar_type() == p.scalar_type() &&
                        r->ps[bs.back().params[0]].device() == p.device();
            if (!fits) {
                bs.emplace_back();
                bytes = 0;
            }
            r->bucket_of.push_back((int)bs.size() - 1);
            r->offset_of.push_back(bytes / (int64_t)p.element_size());
            bs.back().params.push_back((int)i);
            bytes += (int64_t)p.nbytes();
        }
        for (auto &b : r->buckets) {
            int64_t numel = 0;
            for (int i : b.params) numel += r->ps[i].numel();
            b.flat = at::zeros({numel}, r->ps[b.params[0]].options().requires_grad(false));
        }
        r->got.assign(r->ps.size(), 0);
        ft_dist_reducer *raw = r.get();
        for (size_t i = 0; i < r->ps.size(); i++) {
            int k = (int)i;
            r->hooks.push_back(
                r->ps[i].register_hook([raw, k](const at::Tensor &g) { raw->on_grad(k, g); }));
        }
    });
    if (st != FT_OK) {
        free_ft_dist_reducer(r.release());
        return st;
    }
    *out = r.release();
    return FT_OK;
}

void free_ft_dist_reducer(ft_dist_reducer *r) noexcept {
    if (!r) return;
    try {
        for (size_t i = 0; i < r->hooks.size(); i++) r->ps[i].remove_hook(r->hooks[i]);
    } catch (...) {}
    if (r->d && r->d->broken) { // a bucket may still be in Gloo's hands: leave it be
        for (auto &b : r->buckets) b.work.release();
    }
    delete r;
}

int ft_dist_reducer_buckets(const ft_dist_reducer *r) noexcept { return (int)r->buckets.size(); }

ft_status ft_dist_reducer_prepare(ft_dist_reducer *r, double weight) noexcept {
    return guard_dist(r->d, "all_reduce", [&] {
        std::lock_guard<std::mutex> lock(r->mu);
        for (auto &b : r->buckets) {
            if (b.work) wait(r->d, b.work); // a step that failed half-way
            b.work.reset();
            b.pending = (int)b.params.size();
        }
        r->next = 0;
        std::fill(r->got.begin(), r->got.end(), 0);
        r->weight = weight;
        r->armed = true;
    });
}

ft_status ft_dist_reducer_finish(ft_dist_reducer *r, ft_tensor *loss,
                                 double *total_weight) noexcept {
    return guard_dist(r->d, "all_reduce", [&] {
        if (!loss) throw std::invalid_argument("NULL loss handle");
        std::lock_guard<std::mutex> lock(r->mu);
        r->armed = false;
        at::NoGradGuard no_grad;
        // What backward left: buckets with a parameter that got no gradient (zeros there).
        for (; r->next < r->buckets.size(); r->next++) {
            auto &b = r->buckets[r->next];
            for (int i : b.params)
                if (!r->got[i]) b.flat.narrow(0, r->offset_of[i], r->ps[i].numel()).zero_();
            r->launch(b);
        }
        at::Tensor tail = at::stack({loss->t.detach().reshape({}).to(at::kDouble) * r->weight,
                                     at::scalar_tensor(r->weight, at::kDouble)});
        if (loss->t.device() != tail.device()) tail = tail.to(loss->t.device());
#ifdef FT_HAVE_NCCL
        if (r->d->nccl)
            tail = tail.to(loss->t.is_cuda() ? loss->t.device() : at::Device(at::kCUDA));
#endif
        std::vector<at::Tensor> one{tail};
        c10::intrusive_ptr<c10d::Work> tw;
        with_pg(r->d, [&](auto &pg) { tw = pg.allreduce(one); });
        for (auto &b : r->buckets) {
            wait(r->d, b.work);
            b.work.reset();
        }
        wait(r->d, tw);
        tail = tail.cpu();
        double total = tail[1].item<double>();
        if (!(total > 0)) throw std::runtime_error("the weights add up to zero");
        loss->t.copy_(tail[0] / total);
        for (auto &b : r->buckets)
            for (int i : b.params) {
                at::Tensor g = r->ps[i].grad();
                if (g.defined())
                    g.copy_(b.flat.narrow(0, r->offset_of[i], r->ps[i].numel()).view(g.sizes()) /
                            total);
            }
        if (total_weight) *total_weight = total;
    });
}

ft_status ft_dist_all_reduce(ft_dist *d, ft_tensor *t, ft_dist_op op) noexcept {
    return guard_dist(d, "all_reduce", [&] {
        if (!t) throw std::invalid_argument("NULL tensor handle");
        at::NoGradGuard no_grad;
        c10d::AllreduceOptions o;
        o.reduceOp = reduce_op(op);
        // Gloo wants a dense contiguous tensor: reduce a copy when t is not.
        at::Tensor x = t->t.is_contiguous() ? t->t : t->t.contiguous();
        std::vector<at::Tensor> one{x};
        c10::intrusive_ptr<c10d::Work> wk;
        with_pg(d, [&](auto &pg) { wk = pg.allreduce(one, o); });
        wait(d, wk);
        if (!x.is_same(t->t)) t->t.copy_(x);
    });
}

ft_status ft_dist_all_reduce_doubles(ft_dist *d, double *v, int n, ft_dist_op op) noexcept {
    return guard_dist(d, "all_reduce", [&] {
        if (n <= 0) return;
        at::Tensor x = at::from_blob(v, {n}, at::kDouble).clone();
#ifdef FT_HAVE_NCCL
        if (d->nccl) x = x.to(at::kCUDA);
#endif
        c10d::AllreduceOptions o;
        o.reduceOp = reduce_op(op);
        std::vector<at::Tensor> one{x};
        c10::intrusive_ptr<c10d::Work> wk;
        with_pg(d, [&](auto &pg) { wk = pg.allreduce(one, o); });
        wait(d, wk);
        x = x.cpu();
        memcpy(v, x.data_ptr<double>(), sizeof(double) * (size_t)n);
    });
}

ft_status ft_dist_broadcast(ft_dist *d, ft_tensor *const *ts, int n, int root) noexcept {
    return guard_dist(d, "broadcast", [&] {
        if (root < 0 || root >= d->world) throw std::invalid_argument("root rank out of range");
        at::NoGradGuard no_grad;
        std::vector<bucket> bs = make_buckets(ts, n, 25 << 20);
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        c10d::BroadcastOptions o;
        o.rootRank = root;
        for (auto &b : bs) {
            b.flat = flatten(b.ts);
            std::vector<at::Tensor> one{b.flat};
            with_pg(d, [&](auto &pg) { works.push_back(pg.broadcast(one, o)); });
        }
        for (auto &wk : works) wait(d, wk);
        if (d->rank != root)
            for (auto &b : bs) unflatten(b, 1.0);
    });
}

ft_status ft_dist_broadcast_bytes(ft_dist *d, void *buf, size_t nbytes, int root) noexcept {
    return guard_dist(d, "broadcast", [&] {
        if (root < 0 || root >= d->world) throw std::invalid_argument("root rank out of range");
        if (nbytes == 0) return;
        at::Tensor x = at::from_blob(buf, {(int64_t)nbytes}, at::kByte).clone();
#ifdef FT_HAVE_NCCL
        if (d->nccl) x = x.to(at::kCUDA);
#endif
        c10d::BroadcastOptions o;
        o.rootRank = root;
        std::vector<at::Tensor> one{x};
        c10::intrusive_ptr<c10d::Work> wk;
        with_pg(d, [&](auto &pg) { wk = pg.broadcast(one, o); });
        wait(d, wk);
        x = x.cpu();
        memcpy(buf, x.data_ptr<uint8_t>(), nbytes);
    });
}

ft_status ft_dist_barrier(ft_dist *d) noexcept {
    return guard_dist(d, "barrier", [&] {
        c10::intrusive_ptr<c10d::Work> wk;
        with_pg(d, [&](auto &pg) { wk = pg.barrier(); });
        wait(d, wk);
    });
}

} // extern "C"
