//! Olist Brazilian e-commerce (Kaggle): every order item is a purchase (weight 5) by the
//! customer's `customer_unique_id`, since `customer_id` is per order and would make every
//! order look like a new user. Categories come from the products file, in English when the
//! translation file is present; Olist has no product names.

use std::collections::HashMap;
use std::path::Path;

use super::error::ImportError;
use super::rows::{absorb, field, id, required_timestamp, Fields, Layout, Table};
use super::spec::Column;
use crate::dataset::{Dataset, DatasetBuilder, FileRole, ItemMeta};

const ITEMS: &str = "olist_order_items_dataset.csv";
const ORDERS: &str = "olist_orders_dataset.csv";
const CUSTOMERS: &str = "olist_customers_dataset.csv";
const PRODUCTS: &str = "olist_products_dataset.csv";
const TRANSLATION: &str = "product_category_name_translation.csv";
const WEIGHT: f32 = 5.0;
const CSV: Layout = Layout::new(b',', true, true);
const DIR: &str = "an Olist directory (Kaggle \"Brazilian E-Commerce Public Dataset by Olist\") holding \
                   olist_order_items_dataset.csv, olist_orders_dataset.csv and olist_customers_dataset.csv \
                   (olist_products_dataset.csv and product_category_name_translation.csv optional)";

pub(super) fn import(dir: &Path) -> Result<Dataset, ImportError> {
    for name in [ITEMS, ORDERS, CUSTOMERS] {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(ImportError::Missing { path, expected: DIR.into() });
        }
    }
    let mut b = Dataset::builder();
    b.report_mut().source = format!("olist:{}", dir.display());

    // customer_id -> customer_unique_id
    let mut customers: HashMap<String, String> = HashMap::new();
    let table = open(dir, CUSTOMERS, "customer_id, customer_unique_id")?;
    let [c, u] = cols(&table, ["customer_id", "customer_unique_id"])?;
    let tally = table.rows(Fields::AtLeast(2), |rec| {
        customers.insert(id(rec, c, "customer")?.into_owned(), id(rec, u, "customer_unique")?.into_owned());
        Ok(())
    })?;
    absorb(&mut b, &tally, FileRole::Lookup);

    // order_id -> (customer_id, purchase time)
    let mut orders: HashMap<String, (String, i64)> = HashMap::new();
    let table = open(dir, ORDERS, "order_id, customer_id, order_purchase_timestamp (YYYY-MM-DD HH:MM:SS)")?;
    let [o, c, t] = cols(&table, ["order_id", "customer_id", "order_purchase_timestamp"])?;
    let tally = table.rows(Fields::AtLeast(3), |rec| {
        let ts = required_timestamp(&field(rec, t))?;
        orders.insert(id(rec, o, "order")?.into_owned(), (id(rec, c, "customer")?.into_owned(), ts));
        Ok(())
    })?;
    absorb(&mut b, &tally, FileRole::Lookup);

    let table = open(dir, ITEMS, "order_id, order_item_id, product_id, ...")?;
    let [o, p] = cols(&table, ["order_id", "product_id"])?;
    let tally = table.rows(Fields::AtLeast(2), |rec| {
        let order = id(rec, o, "order")?;
        let product = id(rec, p, "product")?;
        let (customer, ts) = orders.get(&*order).ok_or_else(|| format!("order {order} not in {ORDERS}"))?;
        let user =
            customers.get(customer).ok_or_else(|| format!("customer {customer} not in {CUSTOMERS}"))?;
        b.push(user, &product, WEIGHT, *ts);
        Ok(())
    })?;
    absorb(&mut b, &tally, FileRole::Interactions);

    if dir.join(PRODUCTS).is_file() {
        let english = translations(&mut b, dir)?;
        products(&mut b, dir, &english)?;
    }
    Ok(b.finish())
}

fn open(dir: &Path, name: &str, columns: &str) -> Result<Table, ImportError> {
    Table::open(&dir.join(name), CSV, format!("{name}: comma-separated with a header naming {columns}"))
}

fn cols<const N: usize>(table: &Table, names: [&str; N]) -> Result<[usize; N], ImportError> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = table.column(&Column::Name(name.into()))?;
    }
    Ok(out)
}

/// Portuguese category name -> English; empty when the translation file is absent. Counted as
/// an item metadata file, since it only names categories.
fn translations(b: &mut DatasetBuilder, dir: &Path) -> Result<HashMap<String, String>, ImportError> {
    let mut english = HashMap::new();
    if !dir.join(TRANSLATION).is_file() {
        return Ok(english);
    }
    let table = open(dir, TRANSLATION, "product_category_name, product_category_name_english")?;
    let [pt, en] = cols(&table, ["product_category_name", "product_category_name_english"])?;
    let tally = table.rows(Fields::AtLeast(2), |rec| {
        let (pt, en) = (field(rec, pt), field(rec, en));
        if pt.is_empty() || en.is_empty() {
            return Err("empty category name".into());
        }
        english.insert(pt.into_owned(), en.into_owned());
        Ok(())
    })?;
    absorb(b, &tally, FileRole::Items);
    Ok(english)
}

/// Products with a category get metadata; an empty category is normal in Olist, not bad.
fn products(
    b: &mut DatasetBuilder,
    dir: &Path,
    english: &HashMap<String, String>,
) -> Result<(), ImportError> {
    let table = open(dir, PRODUCTS, "product_id, product_category_name, ...")?;
    let [p, c] = cols(&table, ["product_id", "product_category_name"])?;
    let tally = table.rows(Fields::AtLeast(2), |rec| {
        let product = id(rec, p, "product")?;
        let category = field(rec, c);
        if !category.is_empty() {
            let name = english.get(&*category).cloned().unwrap_or_else(|| category.into_owned());
            b.meta(&product, ItemMeta { name: None, categories: vec![name] });
        }
        Ok(())
    })?;
    absorb(b, &tally, FileRole::Items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import, Source};

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn joins_items_orders_customers_and_translates_categories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            ITEMS,
            "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value\n\
             o1,1,pA,s1,2017-09-19 09:45:35,58.90,13.29\n\
             o1,2,pA,s1,2017-09-19 09:45:35,58.90,13.29\n\
             o2,1,pB,s2,2017-05-03 11:05:13,239.90,19.93\n\
             o9,1,pB,s2,2017-05-03 11:05:13,239.90,19.93\n\
             o3,1,pC,s2,2017-05-03 11:05:13,239.90,19.93\n",
        );
        write(
            d,
            ORDERS,
            "\"order_id\",\"customer_id\",\"order_status\",\"order_purchase_timestamp\"\n\
             \"o1\",\"c1\",\"delivered\",\"2017-09-13 08:59:02\"\n\
             \"o2\",\"c2\",\"delivered\",\"2017-04-26 10:53:06\"\n\
             \"o3\",\"c3\",\"delivered\",\"2018-01-14 14:33:31\"\n",
        );
        write(
            d,
            CUSTOMERS,
            "customer_id,customer_unique_id,customer_zip_code_prefix\nc1,U1,1\nc2,U1,2\nc3,U3,3\n",
        );
        write(d, PRODUCTS, "product_id,product_category_name,x\npA,cool_stuff,1\npB,,2\npC,perfumaria,3\n");
        write(
            d,
            TRANSLATION,
            "\u{feff}product_category_name,product_category_name_english\ncool_stuff,cool_stuff_en\n",
        );

        let data = import(&Source::Olist(d.into())).unwrap();
        // Two customer_ids of one unique customer are one user; the duplicate item is kept.
        assert_eq!(data.users, ["U1", "U3"]);
        assert_eq!(data.events.len(), 4);
        assert!(data.events.iter().all(|e| e.weight == 5.0));
        assert_eq!(data.events[0].ts, 1_505_293_142); // 2017-09-13 08:59:02 UTC
        assert_eq!(data.report.rows_bad, 1);
        assert_eq!(data.report.bad_examples, [format!("{ITEMS}:5: order o9 not in {ORDERS}")]);
        let cat = |p: &str| {
            let i = data.items.iter().position(|x| x == p).unwrap() as u32;
            data.item_meta.get(&i).map(|m| m.categories.clone())
        };
        assert_eq!(cat("pA"), Some(vec!["cool_stuff_en".to_string()]));
        assert_eq!(cat("pB"), None);
        assert_eq!(cat("pC"), Some(vec!["perfumaria".to_string()]));
    }

    #[test]
    fn missing_file_names_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ITEMS, "order_id,product_id\n");
        let err = import(&Source::Olist(dir.path().into())).unwrap_err();
        assert!(matches!(err, ImportError::Missing { .. }));
        let msg = err.to_string();
        assert!(msg.contains(ORDERS) && msg.contains(CUSTOMERS), "{msg}");
    }
}
