/*
 * agora-products: products_rank, the relevance of the SQLite full-text search — an FTS5
 * auxiliary function that every SQLite connection of the process gets.
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
 */
#ifndef PRODUCTS_SEARCH_RANK_H
#define PRODUCTS_SEARCH_RANK_H

/*
 * Makes every SQLite connection opened from now on in this process get products_rank
 * (sqlite3_auto_extension). Call once before opening any. Returns 0 or AG_ENOMEM; a connection
 * where the function cannot be added fails to open, saying why.
 */
int search_rank_register(void);

#endif
