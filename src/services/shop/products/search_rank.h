/*
 * agora-products: the SQLite functions of the full-text search, which every SQLite connection of
 * the process gets: products_rank, the relevance (an FTS5 auxiliary function), and products_top,
 * the best matches and their count in one pass (an aggregate).
 *
 * products_rank(products_fts, w0, w1, ...) is FTS5's bm25 with b = 0 and without the inverse
 * document frequency: for each phrase of the query, tf = the sum over its occurrences in the row
 * of the weight of their column (w0 for column 0...; 0 for a column not given), and the row
 * scores sum(tf * (k1 + 1) / (tf + k1)), k1 = 1.2. It returns minus the score (lower is better,
 * like bm25, so ORDER BY products_rank(...) ranks the best first).
 *
 * Why not bm25: bm25 looks up each matching row's column sizes (one B-tree search per match),
 * and its inverse document frequency counts every row of every phrase once more. On 100,000
 * products, a word matching 25,000 of them took 25–40 ms to rank with bm25 and 5 ms with this.
 * PostgreSQL's ts_rank has neither document length nor inverse frequency either.
 *
 * products_top(rowid, rank, keep) over the matches returns the JSON array [count, rowid, ...]:
 * how many rows it saw, then the rowids of the best keep of them, best first (lower rank, then
 * lower rowid: the order of ORDER BY rank, rowid). It keeps them in a heap: one pass, memory for
 * keep rows at most, no sort of every match and no second pass to count them.
 */
#ifndef PRODUCTS_SEARCH_RANK_H
#define PRODUCTS_SEARCH_RANK_H

/*
 * Makes every SQLite connection opened from now on in this process get products_rank and
 * products_top (sqlite3_auto_extension). Call once before opening any. Returns 0 or AG_ENOMEM; a
 * connection where the function cannot be added fails to open, saying why.
 */
int search_rank_register(void);

#endif
