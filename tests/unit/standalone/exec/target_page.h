/*
 * Standalone stand-in for QEMU's exec/target_page.h: the target page
 * size is the test's to give.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_EXEC_TARGET_PAGE_H
#define STANDALONE_EXEC_TARGET_PAGE_H

size_t qemu_target_page_size(void);

#endif
