/* SPDX-License-Identifier: MIT */
/* The epoll loop's small helpers and its one timer (linger deadlines). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "broker.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int loop_add(struct broker *b, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(b->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct broker *b, struct watch *w)
{
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_retire(struct broker *b, struct watch *w)
{
	loop_del(b, w);
	close(w->fd);
	w->fd = -1;
	w->retired_next = b->retired;
	b->retired = w;
}

void loop_reap(struct broker *b)
{
	while (b->retired) {
		struct watch *w = b->retired;

		b->retired = w->retired_next;
		free(w);
	}
}

/*
 * One timerfd serves every lingering pagemap: armed for the earliest
 * deadline, or a one-second tick while pagemaps linger, so pressure and
 * vanished devices are noticed even without a uevent.
 */
void loop_arm_timer(struct broker *b)
{
	uint64_t next = registry_next_deadline(b), mig = engine_next_deadline(b), now = now_ms();
	struct itimerspec its = { 0 };

	if (mig && (!next || mig < next))
		next = mig;
	mig = peers_next_deadline(b);
	if (mig && (!next || mig < next))
		next = mig;
	if (b->accept_resume_at && (!next || b->accept_resume_at < next))
		next = b->accept_resume_at;
	if (b->recover_deadline && (!next || b->recover_deadline < next))
		next = b->recover_deadline;

	if (next) {
		uint64_t ms = next > now ? next - now : 1;

		if (ms > 1000)
			ms = 1000;
		its.it_value.tv_sec = (time_t)(ms / 1000);
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	}
	timerfd_settime(b->timer.fd, 0, &its, NULL);
}
